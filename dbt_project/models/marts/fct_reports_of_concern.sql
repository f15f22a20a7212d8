{#- Reports of concern (aktualisering of typ 'Anmälan') received up to R about linkable
    persons (valid identifier, not protected), pseudonymised, with the age on the day the
    report came in and the handling district's area. -#}

with

matters as (

    select * from {{ ref('stg_case_system__aktualisering') }}

),

clients as (

    select * from {{ ref('int_case_system__klient_pseudonyms') }}

),

districts as (

    select * from {{ ref('ref_stadsdelar') }}

),

reports as (

    select *
    from matters
    where typ = 'Anmälan'
        and inkom_datum is not null
        and inkom_datum <= {{ reference_date() }}

),

final as (

    select
        reports.aktualisering_id,
        clients.person_pseudonym,
        reports.inkom_datum,
        cast(reports.inkom_datum + interval 14 day as date) as forhandsbedomning_deadline,
        reports.forhandsbedomning_datum,
        reports.beslut,
        reports.anmalare_kategori,
        reports.stadsdel,
        districts.sspf_omrade_code,
        districts.stadsdelsomrade_code,
        {{ age_on('clients.birth_date', 'reports.inkom_datum') }} as age_at_report,
        {{ age_on('clients.birth_date', 'reports.inkom_datum') }} between 0 and 17 as is_child
    from reports
    inner join clients
        on clients.klient_id = reports.klient_id
    left join districts
        on {{ district_key('districts.stadsdel_name') }} = {{ district_key('reports.stadsdel') }}
    where clients.is_linkable

)

select * from final
