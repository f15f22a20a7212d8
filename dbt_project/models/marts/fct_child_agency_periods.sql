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

with

periods as (

    select period_type, period_start, period_end, lookback_end, trailing_window_start
    from {{ ref('int_periods') }}
    where is_report_period

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

high_absence_months as (

    select person_pseudonym, least(period_end, {{ reference_date() }}) as month_end
    from pupil_periods
    where period_type = 'manad'
        and is_high_absence

),

known_to_school as (

    select distinct high_absence_months.person_pseudonym, periods.period_type, periods.period_start
    from high_absence_months
    inner join periods
        on high_absence_months.month_end > periods.trailing_window_start
        and high_absence_months.month_end <= periods.lookback_end

),

known_to_social_services as (

    select distinct involvement.person_pseudonym, periods.period_type, periods.period_start
    from involvement
    inner join periods
        on involvement.start_date <= periods.lookback_end
        and coalesce(involvement.end_date, date '9999-12-31') > periods.trailing_window_start

),

known_to_police as (

    select distinct police_events.person_pseudonym, periods.period_type, periods.period_start
    from police_events
    inner join periods
        on police_events.brottsdatum > periods.trailing_window_start
        and police_events.brottsdatum <= periods.lookback_end
    where police_events.roll in ('Misstänkt', 'Målsägande')

),

known as (

    select *, 'school' as agency from known_to_school
    union all
    select *, 'social_services' as agency from known_to_social_services
    union all
    select *, 'police' as agency from known_to_police

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
