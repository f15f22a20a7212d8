{#- Per published period (every type) and person known to at least one agency in the
    trailing window (lookback_end - trailing_months months, lookback_end], lookback_end =
    least(period_end, R): which agencies knew the person, how many, the age on lookback_end
    and the school area in the period (null when not enrolled: city level only). Nothing
    after R counts.
    School: high absence in a calendar month whose last day (R for the month that contains
    R) lies in the window. Social services: a report of concern (any age) received in the
    window, or an investigation or intervention open at some point of it (start <=
    lookback_end, end null or after the window's start). Police: a suspicion or victim row
    with offence date in the window. -#}

{#- Incremental (macros/child_agency_periods.sql): a night rebuilds every person in the periods
    that are new, whose window moved or that hold R (now or at the last build), and every
    period of the persons whose rows (identity, enrolments, high absence in ended months,
    involvement, police events) are new, changed or gone; the pre-hook deletes those rows and
    those of periods no longer reported, the post-hooks keep what the table was built from,
    in its transaction. -#}

{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_rebuilt_person_periods(child_agency_changed_persons(),
                                                child_agency_rebuilt_periods(),
                                                reported_only=true) }}",
    post_hook=[
        "{{ record_child_agency_periods_as_built('persons') }}",
        "{{ record_child_agency_periods_as_built('periods') }}",
    ],
) }}

-- depends_on: {{ ref('int_pupil_states') }}

with

periods as (

    select period_type, period_start, period_end, lookback_end, trailing_window_start
    from {{ ref('int_periods') }}
    where is_report_period

),
{%- if is_incremental() %}

-- what an incremental build computes: every person in the rebuilt periods, and the changed
-- persons in every other period (a full build computes every person and period)
rebuilt_periods as (

    {{ child_agency_rebuilt_periods() }}

),

changed_persons as (

    select person_pseudonym
    from ({{ child_agency_changed_persons() }}) as changed
    where person_pseudonym is not null

),
{%- endif %}

scoped_periods as (

    select
        periods.*,
        {%- if is_incremental() %}
        exists (
            select 1
            from rebuilt_periods
            where rebuilt_periods.period_type = periods.period_type
                and rebuilt_periods.period_start = periods.period_start
        ) as is_rebuilt
        {%- else %}
        true as is_rebuilt
        {%- endif %}
    from periods

),

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

involvement as (

    select * from {{ ref('fct_social_services_involvement') }}

),

police_events as (

    select * from {{ ref('fct_police_events') }}

),

identities as (

    select person_pseudonym, birth_date
    from {{ ref('int_identities') }}
    where not is_protected

),

-- what made a person known to an agency, as the days [first_day, last_day] it covers: known
-- in a period when it overlaps the window (first_day <= lookback_end, last_day >
-- trailing_window_start)
known_for as (

    -- school: high absence in a calendar month, dated on its last day (R for the month that
    -- holds R)
    select
        person_pseudonym,
        'school' as agency,
        least(period_end, {{ reference_date() }}) as first_day,
        least(period_end, {{ reference_date() }}) as last_day
    from pupil_periods
    where period_type = 'manad'
        and is_high_absence

    union all

    select
        person_pseudonym,
        'social_services' as agency,
        start_date as first_day,
        coalesce(end_date, date '9999-12-31') as last_day
    from involvement

    union all

    select
        person_pseudonym,
        'police' as agency,
        brottsdatum as first_day,
        brottsdatum as last_day
    from police_events
    where roll in ('Misstänkt', 'Målsägande')

),

known as (

    select
        known_for.person_pseudonym,
        known_for.agency,
        scoped_periods.period_type,
        scoped_periods.period_start
    from known_for
    inner join scoped_periods
        on known_for.first_day <= scoped_periods.lookback_end
        and known_for.last_day > scoped_periods.trailing_window_start
    where scoped_periods.is_rebuilt
    {%- if is_incremental() %}

    union all

    select
        known_for.person_pseudonym,
        known_for.agency,
        scoped_periods.period_type,
        scoped_periods.period_start
    from (
        select * from known_for
        where person_pseudonym in (select person_pseudonym from changed_persons)
    ) as known_for
    inner join scoped_periods
        on known_for.first_day <= scoped_periods.lookback_end
        and known_for.last_day > scoped_periods.trailing_window_start
    where not scoped_periods.is_rebuilt
    {%- endif %}

),

per_person as (

    select
        person_pseudonym,
        period_type,
        period_start,
        bool_or(agency = 'school') as is_known_to_school,
        bool_or(agency = 'social_services') as is_known_to_social_services,
        bool_or(agency = 'police') as is_known_to_police
    from known
    group by person_pseudonym, period_type, period_start

),

final as (

    select
        per_person.person_pseudonym,
        per_person.period_type,
        per_person.period_start,
        periods.period_end,
        {{ age_on('identities.birth_date', 'periods.lookback_end') }} as age_on_period_end,
        per_person.is_known_to_school,
        per_person.is_known_to_social_services,
        per_person.is_known_to_police,
        -- the agencies counted from the flags: a count(distinct agency) in per_person took
        -- twice as long
        cast(per_person.is_known_to_school as bigint)
            + cast(per_person.is_known_to_social_services as bigint)
            + cast(per_person.is_known_to_police as bigint) as agency_count,
        coalesce(pupil_periods.is_enrolled, false) as is_enrolled,
        pupil_periods.sspf_omrade_code,
        pupil_periods.stadsdelsomrade_code
    from per_person
    inner join periods
        on periods.period_type = per_person.period_type
        and periods.period_start = per_person.period_start
    inner join identities
        on identities.person_pseudonym = per_person.person_pseudonym
    left join pupil_periods
        on pupil_periods.person_pseudonym = per_person.person_pseudonym
        and pupil_periods.period_type = per_person.period_type
        and pupil_periods.period_start = per_person.period_start
        and pupil_periods.is_enrolled

)

select * from final
