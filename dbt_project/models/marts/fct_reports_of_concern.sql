{#- Reports of concern: aktualisering rows of typ 'Anmälan' received up to R about linkable
    persons (valid identifier, not protected in any source), pseudonymised, one row per
    report, with the age on the day the report came in, the reporter category (blank or
    missing: 'Okänd') and the handling district's areas (matched trimmed and exactly to
    ref_stadsdelar; blank or unknown: none, city level only). -#}

with

matters as (

    select * from {{ ref('stg_case_system__aktualisering') }}

),

clients as (

    select * from {{ ref('int_case_system__klient_pseudonyms') }}

),

districts as (

    select * from {{ ref('stg_reference__stadsdelar') }}

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
        reports.aktualisering_id as report_key,
        clients.person_pseudonym,
        reports.inkom_datum,
        {{ age_on('clients.birth_date', 'reports.inkom_datum') }} as age_at_inkom,
        {{ age_on('clients.birth_date', 'reports.inkom_datum') }} between 0 and 17 as is_child,
        coalesce(nullif(trim(reports.anmalare_kategori), ''), 'Okänd') as anmalare_kategori,
        reports.forhandsbedomning_datum,
        cast(reports.inkom_datum + to_days({{ var_int('forhandsbedomning_days') }}) as date)
            as forhandsbedomning_deadline,
        reports.beslut,
        districts.stadsdelsomrade_code,
        nullif(trim(districts.sspf_omrade_code), '') as sspf_omrade_code
    from reports
    inner join clients
        on clients.klient_id = reports.klient_id
    left join districts
        on {{ district_key('districts.stadsdel_name') }} = {{ district_key('reports.stadsdel') }}
    where clients.is_linkable

)

select * from final
