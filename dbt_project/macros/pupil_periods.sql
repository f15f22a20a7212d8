{#- Incremental fct_pupil_periods (README "Incremental nightly builds"). The table keeps,
    beside it in the same database, what it was built from: the per-pupil states of
    int_pupil_states (fct_pupil_periods__as_built_pupils) and the build-wide row of
    int_pupil_period_parameters (fct_pupil_periods__as_built_parameters), written by its
    post-hook in the transaction that writes its rows, so the table and what it was built
    from never disagree. A night compares them with this build's and rebuilds the rows of

    - every pupil whose state is new or changed, in every period (pupil_periods_changed_pupils);
    - every pupil in the periods whose sums can have changed (pupil_periods_rebuilt_periods).

    Nothing on a first or full build. -#}

{#- The thresholds fct_pupil_periods applies, as one struct, as this build renders them. Like
    R, they are compared and recorded as fct_pupil_periods renders them, not as
    int_pupil_period_parameters was built: a run of fct_pupil_periods alone with other
    thresholds rebuilds every row. (Its reporting lag it takes from
    int_pupil_period_parameters: run them together, as the pipeline and `--select
    +fct_pupil_periods` do, when R changes.) -#}
{% macro pupil_periods_thresholds() -%}
    struct_pack(
        min_offered_minutes := cast({{ var_number('min_offered_minutes') }} as double),
        high_absence_threshold := {{ var_share('high_absence_threshold') }},
        very_high_absence_threshold := {{ var_share('very_high_absence_threshold') }}
    )
{%- endmacro %}

{#- The periods of int_periods rebuilt for every pupil (period_key, period_type,
    period_start): every period when a threshold changed or the attendance chain was rebuilt
    from scratch; else the periods that are new, those that hold a lesson day the pending SS
    12000 batches touched (their sums changed), and those that hold a day between the earlier
    first lag day (or the day after the earlier R) and the later R: the days that moved into
    or out of the reporting lag or past R. -#}
{% macro pupil_periods_rebuilt_periods() -%}
    select periods.period_key, periods.period_type, periods.period_start
    from {{ ref('int_periods') }} as periods
    cross join {{ ref('int_pupil_period_parameters') }} as now
    cross join {{ as_built('parameters') }} as built
    where {{ pupil_periods_thresholds() }} is distinct from built.thresholds
        or {{ pending_rebuild_of_all_days() }}
        or not list_contains(built.period_keys, periods.period_key)
        or (
            periods.period_end >= least(now.first_lag_day, built.first_lag_day,
                                        least({{ reference_date() }}, built.reference_date) + 1)
            and periods.period_start <= greatest({{ reference_date() }}, built.reference_date)
        )
        or exists (
            select 1
            from ({{ periods_of_days(pending_lesson_days()) }}) as touched
            where touched.period_type = periods.period_type
                and touched.period_start = periods.period_start
        )
{%- endmacro %}

{#- The pupils whose state is new, changed or gone since the last build: pupil_key of this
    build (null when gone; all their periods are rebuilt) and the pseudonym they were built
    under (null when new; their rows are deleted). -#}
{% macro pupil_periods_changed_pupils() -%}
    select now.pupil_key, built.person_pseudonym as built_pseudonym
    from {{ ref('int_pupil_states') }} as now
    full join {{ as_built('pupils') }} as built
        on built.person_pseudonym = now.person_pseudonym
    where built.pupil_state is distinct from now.pupil_state
{%- endmacro %}

{#- Post-hook of fct_pupil_periods, in its transaction: keep what this build was made from
    (`kind`: 'pupils' or 'parameters'), on every build, full or not. -#}
{% macro record_pupil_periods_as_built(kind) -%}
    {%- if kind == 'pupils' -%}
        create or replace table {{ as_built('pupils') }} as
        select person_pseudonym, pupil_state from {{ ref('int_pupil_states') }}
    {%- else -%}
        create or replace table {{ as_built('parameters') }} as
        select
            {{ reference_date() }} as reference_date,
            parameters.*,
            {{ pupil_periods_thresholds() }} as thresholds
        from {{ ref('int_pupil_period_parameters') }} as parameters
    {%- endif -%}
{%- endmacro %}
