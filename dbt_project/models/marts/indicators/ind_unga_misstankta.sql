with

police_events as (

    select * from {{ ref('fct_police_events') }}

),

young_suspects as (

    select
        person_pseudonym,
        cast(date_trunc('month', brottsdatum) as date) as month_start,
        stadsdelsomrade_code
    from police_events
    where roll = 'Misstänkt'
        and age_at_offence between 0 and 17

),

cells as (

    {{ indicator_cells('young_suspects', numerator='count(distinct person_pseudonym)') }}

),

final as (

    {{ indicator_rows('cells', 'unga_misstankta', 'antal') }}

)

select * from final
