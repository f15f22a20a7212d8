{#- One row per pupil (linkable person with a GR enrolment in school year 1-9) and month:
    the enrolment active on the month's last day, else the enrolment active within the
    month with the latest start date. Enrolments starting after R do not count. -#}

with

enrolments as (

    select * from {{ ref('int_ss12000__current_enrolments') }}

),

people as (

    select * from {{ ref('int_ss12000__person_pseudonyms') }}

),

months as (

    select month_start, month_end from {{ ref('int_months') }}

),

pupil_enrolments as (

    select
        people.person_pseudonym,
        enrolments.*
    from enrolments
    inner join people
        on people.person_id = enrolments.person_id
    where people.is_linkable
        and enrolments.school_type = 'GR'
        and enrolments.school_year between 1 and 9
        and enrolments.start_date is not null
        and enrolments.start_date <= {{ reference_date() }}

),

active_in_month as (

    select
        pupil_enrolments.*,
        months.month_start,
        months.month_end,
        pupil_enrolments.end_date is null
            or pupil_enrolments.end_date >= months.month_end as is_active_on_last_day
    from pupil_enrolments
    inner join months
        on pupil_enrolments.start_date <= months.month_end
        and (pupil_enrolments.end_date is null or pupil_enrolments.end_date >= months.month_start)

),

chosen as (

    select *
    from active_in_month
    qualify row_number() over (
        partition by person_pseudonym, month_start
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
        month_start,
        month_end,
        school_unit_code,
        school_year,
        huvudman_kind,
        sspf_omrade_code,
        stadsdelsomrade_code
    from chosen

)

select * from final
