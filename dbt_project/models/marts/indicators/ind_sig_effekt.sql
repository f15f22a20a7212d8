{%- set follow_up_months = var_int('sig_followup_months', 1) -%}

with

interventions as (

    select * from {{ ref('fct_interventions') }}

),

police_events as (

    select * from {{ ref('fct_police_events') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}
    where is_enrolled

),

-- SIG interventions whose follow-up end F = start + sig_followup_months months has passed by R
sig_follow_ups as (

    select
        intervention_key,
        person_pseudonym,
        startdatum,
        cast(startdatum + to_months({{ follow_up_months }}) as date) as follow_up_end
    from interventions
    where insatstyp = 'SIG'
        and cast(startdatum + to_months({{ follow_up_months }}) as date) <= {{ reference_date() }}

),

-- a new suspicion (any age) with Brottsdatum in (start, F]
with_new_suspicion as (

    select distinct sig_follow_ups.intervention_key
    from sig_follow_ups
    inner join police_events
        on police_events.person_pseudonym = sig_follow_ups.person_pseudonym
        and police_events.brottsdatum > sig_follow_ups.startdatum
        and police_events.brottsdatum <= sig_follow_ups.follow_up_end
    where police_events.roll = 'Misstänkt'

),

qualifying as (

    select
        periods.period_type,
        periods.period_start,
        sig_follow_ups.person_pseudonym,
        sig_follow_ups.intervention_key,
        sig_follow_ups.follow_up_end,
        with_new_suspicion.intervention_key is null as has_no_new_suspicion
    from sig_follow_ups
    inner join periods
        on sig_follow_ups.follow_up_end between periods.period_start and periods.period_end
    left join with_new_suspicion
        on with_new_suspicion.intervention_key = sig_follow_ups.intervention_key

),

-- a person counts once per period: the intervention with the latest F (ties: highest id),
-- in the school area of the person's enrolment in the period (else the city only)
counted_persons as (

    select
        qualifying.period_type,
        qualifying.period_start,
        qualifying.person_pseudonym,
        qualifying.has_no_new_suspicion,
        pupil_periods.stadsdelsomrade_code,
        pupil_periods.sspf_omrade_code
    from qualifying
    left join pupil_periods
        on pupil_periods.person_pseudonym = qualifying.person_pseudonym
        and pupil_periods.period_type = qualifying.period_type
        and pupil_periods.period_start = qualifying.period_start
    qualify row_number() over (
        partition by qualifying.person_pseudonym, qualifying.period_type, qualifying.period_start
        order by qualifying.follow_up_end desc, qualifying.intervention_key desc
    ) = 1

),

final as (

    {{ indicator_cube('counted_persons', areas='school', numerator_when='has_no_new_suspicion') }}

)

select * from final
