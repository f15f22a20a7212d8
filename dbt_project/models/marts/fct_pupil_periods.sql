{#- One row per pupil (pseudonym) and period of int_periods (vecka, manad, termin, ar): the
    period's GR enrolment (school unit, school year, Huvudman kind, areas) and the sums of the
    pupil's attendance days in the period. Assessed = enrolled and offered >=
    min_offered_minutes; high / very high absence = assessed and absence / offered >= the
    threshold. Persons with attendance but no enrolment in the period have a row that is not
    enrolled (they count nowhere). settled_scheduled_records / settled_reported_records leave
    out the reporting lag (the last reporting_lag_school_days school days up to R, still being
    reported): what the reporting rate counts. -#}

{#- Incremental (macros/pupil_periods.sql): a night rebuilds every pupil in the periods whose
    sums can have changed (those holding a day the pending SS 12000 batches touched, a day
    that moved into or out of the reporting lag or past R, new periods; all of them when a
    threshold changed) and every period of the pupils whose state (int_pupil_states: ids,
    enrolments, areas, pseudonym) is new or changed; the pre-hook deletes those rows and the
    rows of pupils who are gone and of periods no longer computed. A new key changes every
    pseudonym, so every pupil is rebuilt. The post-hooks keep what the table was built from
    (in its transaction), then mark the pending SS 12000 batches built once it is committed:
    the days they touched are in int_ss12000__attendance_days and their periods in
    int_ss12000__attendance_periods, their tests passed on them and the periods here take
    them. After the commit, not in its transaction (this table is in the analytics database,
    the bookkeeping in the restricted one, and a DuckDB transaction writes to one database):
    a build that stops before or in between leaves the batches pending, and the next night
    rebuilds their days and periods again, which changes nothing. -#}

{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_rebuilt_person_periods(pupil_periods_changed_pupils(),
                                                pupil_periods_rebuilt_periods()) }}",
    post_hook=[
        "{{ record_pupil_periods_as_built('pupils') }}",
        "{{ record_pupil_periods_as_built('parameters') }}",
        after_commit("update {{ ref('stg_ss12000__batch_lesson_days') }} set is_built = true where not is_built"),
    ],
) }}

-- depends_on: {{ ref('stg_ss12000__batch_lesson_days') }}
-- depends_on: {{ ref('int_pupil_states') }}

{%- set measures = ['offered_minutes', 'valid_absence_minutes', 'invalid_absence_minutes',
                     'scheduled_records', 'reported_records'] %}

with

periods as (

    select period_key, period_type, period_start, period_end from {{ ref('int_periods') }}

),

{%- if is_incremental() %}

-- what an incremental build computes: every pupil in the rebuilt periods, and the changed
-- pupils in every period (a full build computes every pupil and period)
rebuilt_periods as (

    {{ pupil_periods_rebuilt_periods() }}

),

changed_pupils as (

    select pupil_key
    from ({{ pupil_periods_changed_pupils() }}) as changed
    where pupil_key is not null

),
{%- endif %}

-- keys only (pupil_key, period_key, enrolment_key): the enrolments give their attributes
-- at the end
enrolment_periods as (

    select enrolment_periods.*
    from {{ ref('int_pupil_enrolment_periods') }} as enrolment_periods
    {%- if is_incremental() %}
    where enrolment_periods.period_key in (select period_key from rebuilt_periods)
        or enrolment_periods.pupil_key in (select pupil_key from changed_pupils)
    {%- endif %}

),

enrolments as (

    select
        enrolment_key,
        school_unit_code,
        school_year,
        huvudman_kind,
        sspf_omrade_code,
        stadsdelsomrade_code
    from {{ ref('int_ss12000__current_enrolments') }}

),

-- linkable persons only: attendance is summed per SS 12000 person id and period first, and
-- mapped to pupils after, on far fewer rows (a table of days per pseudonym would be
-- rewritten whole every night: about 10 M rows at Stockholm's size). ids_of_pupil: the
-- linkable person ids of the pupil (pupil_key: one per pseudonym), nearly always one
people as (

    select
        person_id,
        pupil_key,
        person_pseudonym,
        count(*) over (partition by pupil_key) as ids_of_pupil
    from {{ ref('int_ss12000__person_pseudonyms') }}
    where is_linkable

),

pupils as (

    select distinct pupil_key, person_pseudonym from people

),

attendance_days as (

    select attendance_days.*
    from {{ ref('int_ss12000__attendance_days') }} as attendance_days
    semi join people
        on people.person_id = attendance_days.person_id

),

-- the reporting lag: the last reporting_lag_school_days school days up to R (dates with any
-- pupil's attendance record) are still being reported; the first of them starts the lag
reporting_lag as (

    select first_lag_day from {{ ref('int_pupil_period_parameters') }}

),

-- the sums over every day of each period of int_periods (int_ss12000__attendance_periods,
-- built incrementally: no table of days is summed whole every night) ...
whole_periods as (

    select
        attendance_periods.*,
        periods.period_key
    from {{ ref('int_ss12000__attendance_periods') }} as attendance_periods
    inner join periods
        on periods.period_type = attendance_periods.period_type
        and periods.period_start = attendance_periods.period_start
    semi join people
        on people.person_id = attendance_periods.person_id
    {%- if is_incremental() %}
    where periods.period_key in (select period_key from rebuilt_periods)
        or attendance_periods.person_id in (
            select people.person_id
            from people
            semi join changed_pupils
                on changed_pupils.pupil_key = people.pupil_key
        )
    {%- endif %}

),

-- ... less the days that do not count: after R (not yet happened), and, for the settled
-- sums, the reporting lag. A handful of days, found by the days' dates alone.
recent_days as (

    select attendance_days.*
    from attendance_days
    cross join reporting_lag
    where attendance_days.lesson_date > {{ reference_date() }}
        or attendance_days.lesson_date >= reporting_lag.first_lag_day

),

-- every day of every period that holds a recent day: the range [period_start, period_end]
-- spelled out, so that the days join their periods by equality
period_days as (

    select
        period_key,
        cast(unnest(generate_series(
            cast(period_start as timestamp), cast(period_end as timestamp), interval 1 day
        )) as date) as period_day
    from periods
    where period_end >= (
        select coalesce(min(lesson_date), {{ reference_date() }} + 1) from recent_days
    )

),

left_out as (

    select
        recent_days.person_id,
        period_days.period_key,
        {%- for measure in measures %}
        sum(recent_days.{{ measure }}) filter (where recent_days.lesson_date > {{ reference_date() }})
            as future_{{ measure }},
        {%- endfor %}
        sum(recent_days.scheduled_records) as unsettled_scheduled_records,
        sum(recent_days.reported_records) as unsettled_reported_records
    from recent_days
    inner join period_days
        on period_days.period_day = recent_days.lesson_date
    group by 1, 2

),

person_id_periods as (

    select
        whole_periods.person_id,
        whole_periods.period_key,
        {%- for measure in measures %}
        whole_periods.{{ measure }} - coalesce(left_out.future_{{ measure }}, 0) as {{ measure }},
        {%- endfor %}
        whole_periods.scheduled_records - coalesce(left_out.unsettled_scheduled_records, 0)
            as settled_scheduled_records,
        whole_periods.reported_records - coalesce(left_out.unsettled_reported_records, 0)
            as settled_reported_records
    from whole_periods
    left join left_out
        on left_out.person_id = whole_periods.person_id
        and left_out.period_key = whole_periods.period_key
    -- a person id whose days in the period all lie after R has no row (every day has records)
    where whole_periods.scheduled_records > coalesce(left_out.future_scheduled_records, 0)

),

-- per pupil: the sums of a pupil with one person id are that id's, taken as they are; only
-- the pupils with several ids are summed (a group by over every pupil-period was a third of
-- this model's query)
attendance_periods as (

    select
        people.pupil_key,
        person_id_periods.period_key,
        {%- for measure in measures + ['settled_scheduled_records', 'settled_reported_records'] %}
        person_id_periods.{{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from person_id_periods
    inner join people
        on people.person_id = person_id_periods.person_id
    where people.ids_of_pupil = 1

    union all

    select
        people.pupil_key,
        person_id_periods.period_key,
        {%- for measure in measures + ['settled_scheduled_records', 'settled_reported_records'] %}
        sum(person_id_periods.{{ measure }}) as {{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from person_id_periods
    inner join people
        on people.person_id = person_id_periods.person_id
    where people.ids_of_pupil > 1
    group by 1, 2

),

-- pupil and period, by their keys: every enrolled pupil-period and every pupil-period with
-- attendance
joined as (

    select
        coalesce(enrolment_periods.pupil_key, attendance_periods.pupil_key) as pupil_key,
        coalesce(enrolment_periods.period_key, attendance_periods.period_key) as period_key,
        enrolment_periods.enrolment_key,
        enrolment_periods.pupil_key is not null as is_enrolled,
        coalesce(attendance_periods.offered_minutes, 0) as offered_minutes,
        coalesce(attendance_periods.valid_absence_minutes, 0) as valid_absence_minutes,
        coalesce(attendance_periods.invalid_absence_minutes, 0) as invalid_absence_minutes,
        coalesce(attendance_periods.scheduled_records, 0) as scheduled_records,
        coalesce(attendance_periods.reported_records, 0) as reported_records,
        coalesce(attendance_periods.settled_scheduled_records, 0) as settled_scheduled_records,
        coalesce(attendance_periods.settled_reported_records, 0) as settled_reported_records
    from enrolment_periods
    full outer join attendance_periods
        on attendance_periods.pupil_key = enrolment_periods.pupil_key
        and attendance_periods.period_key = enrolment_periods.period_key

),

measured as (

    select
        joined.*,
        joined.valid_absence_minutes + joined.invalid_absence_minutes as absence_minutes,
        case
            when joined.offered_minutes > 0
                then cast(joined.valid_absence_minutes + joined.invalid_absence_minutes as double)
                    / joined.offered_minutes
        end as absence_share,
        joined.is_enrolled
            and joined.offered_minutes >= {{ var_number('min_offered_minutes') }} as is_assessed
    from joined

),

final as (

    select
        pupils.person_pseudonym,
        periods.period_type,
        periods.period_start,
        periods.period_end,
        measured.is_enrolled,
        enrolments.school_unit_code,
        enrolments.school_year,
        enrolments.huvudman_kind,
        enrolments.sspf_omrade_code,
        enrolments.stadsdelsomrade_code,
        cast(measured.offered_minutes as double) as offered_minutes,
        cast(measured.valid_absence_minutes as bigint) as valid_absence_minutes,
        cast(measured.invalid_absence_minutes as bigint) as invalid_absence_minutes,
        cast(measured.absence_minutes as bigint) as absence_minutes,
        measured.absence_share,
        cast(measured.scheduled_records as bigint) as scheduled_records,
        cast(measured.reported_records as bigint) as reported_records,
        cast(measured.settled_scheduled_records as bigint) as settled_scheduled_records,
        cast(measured.settled_reported_records as bigint) as settled_reported_records,
        measured.is_assessed,
        measured.is_assessed
            and measured.absence_share >= {{ var_share('high_absence_threshold') }} as is_high_absence,
        measured.is_assessed
            and measured.absence_share >= {{ var_share('very_high_absence_threshold') }} as is_very_high_absence
    from measured
    inner join periods
        on periods.period_key = measured.period_key
    inner join pupils
        on pupils.pupil_key = measured.pupil_key
    left join enrolments
        on enrolments.enrolment_key = measured.enrolment_key

)

select * from final
