{#- Per published month and person: which agencies knew the person in the trailing 12
    months (month_end - 12 months, month_end], the person's age on the month's last day
    and school area in the month (null when not enrolled: city level only).
    School: high absence in a month whose last day lies in the window. Social services: a
    report of concern received in the window, or an investigation or intervention open
    at some point of it. Police: a row (suspect or victim) with offence date in it. -#}

with

months as (

    select month_start, month_end, trailing_window_start
    from {{ ref('int_months') }}
    where is_report_month

),

pupil_months as (

    select * from {{ ref('fct_pupil_months') }}

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

known_to_school as (

    select distinct pupil_months.person_pseudonym, months.month_start
    from pupil_months
    inner join months
        on pupil_months.month_end > months.trailing_window_start
        and pupil_months.month_end <= months.month_end
    where pupil_months.is_high_absence

),

known_to_social_services as (

    select distinct involvement.person_pseudonym, months.month_start
    from involvement
    inner join months
        on involvement.start_date <= months.month_end
        and (involvement.end_date is null or involvement.end_date > months.trailing_window_start)

),

known_to_police as (

    select distinct police_events.person_pseudonym, months.month_start
    from police_events
    inner join months
        on police_events.brottsdatum > months.trailing_window_start
        and police_events.brottsdatum <= months.month_end
    where police_events.roll in ('Misstänkt', 'Målsägande')

),

known as (

    select person_pseudonym, month_start, 'school' as agency from known_to_school
    union all
    select person_pseudonym, month_start, 'social_services' as agency from known_to_social_services
    union all
    select person_pseudonym, month_start, 'police' as agency from known_to_police

),

per_person as (

    select
        person_pseudonym,
        month_start,
        bool_or(agency = 'school') as is_known_to_school,
        bool_or(agency = 'social_services') as is_known_to_social_services,
        bool_or(agency = 'police') as is_known_to_police,
        count(distinct agency) as agency_count
    from known
    group by person_pseudonym, month_start

),

final as (

    select
        per_person.person_pseudonym,
        per_person.month_start,
        months.month_end,
        {{ age_on('identities.birth_date', 'months.month_end') }} as age_on_month_end,
        per_person.is_known_to_school,
        per_person.is_known_to_social_services,
        per_person.is_known_to_police,
        per_person.agency_count,
        coalesce(pupil_months.is_enrolled, false) as is_enrolled,
        pupil_months.sspf_omrade_code,
        pupil_months.stadsdelsomrade_code
    from per_person
    inner join months
        on months.month_start = per_person.month_start
    inner join identities
        on identities.person_pseudonym = per_person.person_pseudonym
    left join pupil_months
        on pupil_months.person_pseudonym = per_person.person_pseudonym
        and pupil_months.month_start = per_person.month_start
        and pupil_months.is_enrolled

)

select * from final
