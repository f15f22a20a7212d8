{#- Reports of concern: aktualisering rows of typ 'Anmälan' received up to R about linkable
    persons (valid identifier, not protected in any source), pseudonymised, one row per
    report, with the age on the day the report came in, the reporter category (blank or
    missing: 'Okänd') and the stadsdelsområde that handles the matter: aktualisering.stadsdel
    names the handling district, a stadsdelsområde, matched trimmed and exactly to a name in
    ref_stadsdelsomraden, else to a code there (blank or unknown: none, city level only). The
    case system cannot place a report in an SSPF area: there is no SSPF column. -#}

with

matters as (

    select * from {{ ref('stg_case_system__aktualisering') }}

),

clients as (

    select * from {{ ref('int_case_system__klient_pseudonyms') }}

),

stadsdelsomraden as (

    select * from {{ ref('stg_reference__stadsdelsomraden') }}

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
        coalesce(by_name.stadsdelsomrade_code, by_code.stadsdelsomrade_code) as stadsdelsomrade_code
    from reports
    inner join clients
        on clients.klient_id = reports.klient_id
    left join stadsdelsomraden as by_name
        on {{ district_key('by_name.stadsdelsomrade_name') }} = {{ district_key('reports.stadsdel') }}
    left join stadsdelsomraden as by_code
        on {{ district_key('by_code.stadsdelsomrade_code') }} = {{ district_key('reports.stadsdel') }}
    where clients.is_linkable

)

select * from final
