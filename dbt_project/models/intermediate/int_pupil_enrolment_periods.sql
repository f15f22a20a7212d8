{#- One row per pupil (linkable person with a GR enrolment in school year 1-9 that starts by
    R) and period of int_periods: the enrolment active on the period's last day, else the
    enrolment active within the period with the latest start date. An end date after R has
    not happened yet (the enrolment is open). -#}

with

enrolments as (

    select * from {{ ref('int_ss12000__current_enrolments') }}

),

people as (

    select * from {{ ref('int_ss12000__person_pseudonyms') }}

),

periods as (

    select period_type, period_start, period_end from {{ ref('int_periods') }}

),

pupil_enrolments as (

    select
        people.person_pseudonym,
        enrolments.school_unit_code,
        enrolments.school_year,
        enrolments.huvudman_kind,
        enrolments.sspf_omrade_code,
        enrolments.stadsdelsomrade_code,
        enrolments.start_date,
        case when enrolments.end_date <= {{ reference_date() }} then enrolments.end_date end as end_date,
        count(*) over (partition by people.person_pseudonym) as enrolments_of_pupil
    from enrolments
    inner join people
        on people.person_id = enrolments.person_id
    where people.is_linkable
        and enrolments.school_type = 'GR'
        and enrolments.school_year between 1 and 9
        and enrolments.start_date is not null
        and enrolments.start_date <= {{ reference_date() }}

),

active_in_period as (

    select
        pupil_enrolments.*,
        periods.period_type,
        periods.period_start,
        periods.period_end,
        coalesce(pupil_enrolments.end_date, date '9999-12-31') >= periods.period_end as is_active_on_last_day
    from pupil_enrolments
    inner join periods
        on pupil_enrolments.start_date <= periods.period_end
        and coalesce(pupil_enrolments.end_date, date '9999-12-31') >= periods.period_start

),

-- a pupil with one enrolment (nearly all) has it in every period it overlaps; only pupils
-- with several are ranked (a window over every pupil-period took half of this model's time)
chosen as (

    select *
    from active_in_period
    where enrolments_of_pupil = 1

    union all

    select *
    from active_in_period
    where enrolments_of_pupil > 1
    qualify row_number() over (
        partition by person_pseudonym, period_type, period_start
        order by
            is_active_on_last_day desc,
            start_date desc,
            end_date desc nulls first,
            school_unit_code nulls last,
            school_year desc
    ) = 1

),

final as (

    select
        person_pseudonym,
        period_type,
        period_start,
        period_end,
        school_unit_code,
        school_year,
        huvudman_kind,
        sspf_omrade_code,
        stadsdelsomrade_code
    from chosen

)

select * from final
