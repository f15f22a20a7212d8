with

police_events as (

    select * from {{ ref('fct_police_events') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

suspicions as (

    select * from police_events
    where roll = 'Misstänkt'

),

-- the persons of unga_misstankta: young (< 18) suspects of an offence dated in the period
young_suspects as (

    select
        periods.period_type,
        periods.period_start,
        suspicions.person_pseudonym,
        suspicions.stadsdelsomrade_code,
        suspicions.sspf_omrade_code
    from suspicions
    inner join periods
        on suspicions.brottsdatum between periods.period_start and periods.period_end
    where suspicions.is_minor

),

-- distinct incidents among each person's suspicions (any age) in the trailing window, which
-- ends at lookback_end (R for the running period)
incidents_in_window as (

    select
        periods.period_type,
        periods.period_start,
        suspicions.person_pseudonym,
        count(distinct suspicions.incident_key) as incidents
    from suspicions
    inner join periods
        on suspicions.brottsdatum > periods.trailing_window_start
        and suspicions.brottsdatum <= periods.lookback_end
    group by 1, 2, 3

),

flagged as (

    select
        young_suspects.*,
        coalesce(incidents_in_window.incidents >= {{ var_int('repeat_incidents', 1) }}, false) as is_repeat
    from young_suspects
    left join incidents_in_window
        on incidents_in_window.person_pseudonym = young_suspects.person_pseudonym
        and incidents_in_window.period_type = young_suspects.period_type
        and incidents_in_window.period_start = young_suspects.period_start

),

final as (

    {{ indicator_cube('flagged', areas='district', numerator_when='is_repeat') }}

)

select * from final
