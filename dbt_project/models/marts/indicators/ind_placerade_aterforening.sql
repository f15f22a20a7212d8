{%- set horizon_days = var_int('placement_horizon_days') -%}

with

interventions as (

    select * from {{ ref('fct_interventions') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}
    where is_enrolled

),

identities as (

    select person_pseudonym, birth_date
    from {{ ref('int_identities') }}
    where not is_protected

),

placements as (

    select * from interventions
    where insatstyp like 'PLAC\_%' escape '\'

),

-- A: the period's last day, or R in the running period
period_days as (

    select
        period_type,
        period_start,
        least(period_end, {{ reference_date() }}) as as_of_date
    from periods

),

-- placements ongoing on A with the planned return in (A, A + placement_horizon_days], or
-- ended in [period_start, A] by reunification with the guardian
returning_placements as (

    select distinct
        period_days.period_type,
        period_days.period_start,
        period_days.as_of_date,
        placements.person_pseudonym
    from placements
    inner join period_days
        on placements.startdatum <= period_days.as_of_date
    where (
            (placements.slutdatum is null or placements.slutdatum > period_days.as_of_date)
            and placements.planerat_slutdatum > period_days.as_of_date
            and placements.planerat_slutdatum <= period_days.as_of_date + {{ horizon_days }}
        )
        or (
            placements.slutdatum between period_days.period_start and period_days.as_of_date
            and placements.avslutsorsak = 'Återförening med vårdnadshavare'
        )

),

-- children (0-17 on A), in the school area of their enrolment in the period (else the city)
returning_children as (

    select
        returning_placements.period_type,
        returning_placements.period_start,
        returning_placements.person_pseudonym,
        pupil_periods.stadsdelsomrade_code,
        pupil_periods.sspf_omrade_code
    from returning_placements
    inner join identities
        on identities.person_pseudonym = returning_placements.person_pseudonym
    left join pupil_periods
        on pupil_periods.person_pseudonym = returning_placements.person_pseudonym
        and pupil_periods.period_type = returning_placements.period_type
        and pupil_periods.period_start = returning_placements.period_start
    where {{ age_on('identities.birth_date', 'returning_placements.as_of_date') }} between 0 and 17

),

final as (

    {{ indicator_cube('returning_children', areas='school') }}

)

select * from final
