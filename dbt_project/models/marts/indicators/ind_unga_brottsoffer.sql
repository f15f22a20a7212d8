with

police_events as (

    select * from {{ ref('fct_police_events') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

-- young persons (< 18 on Brottsdatum) who are victims (Målsägande) of an offence dated in
-- the period; a person counts once per cell (area of each offence, category of each offence)
young_victims as (

    select
        periods.period_type,
        periods.period_start,
        police_events.person_pseudonym,
        police_events.stadsdelsomrade_code,
        police_events.sspf_omrade_code,
        police_events.brottskategori
    from police_events
    inner join periods
        on police_events.brottsdatum between periods.period_start and periods.period_end
    where police_events.roll = 'Målsägande'
        and police_events.is_minor

),

final as (

    {{ indicator_cube('young_victims', areas='district', breakdowns=['brottskategori']) }}

)

select * from final
