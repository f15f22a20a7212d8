{#- Incremental fct_child_agency_periods (README "Incremental nightly builds"). A row (person,
    period) follows from the period's trailing window and from the person's own rows: birth
    date and protection (int_identities), enrolments and areas (int_pupil_states), high
    absence in calendar months (fct_pupil_periods), social services' involvement and police
    events. The table keeps, beside it in the same database and written in its transaction,
    what it was built from: a digest of each person's rows
    (fct_child_agency_periods__as_built_persons) and the report periods with their windows
    and the R of the build (fct_child_agency_periods__as_built_periods). A night rebuilds

    - every person in the periods that are new, whose window moved, or that hold R now or
      held it at the last build (the running periods: their windows end on R);
    - every period of a person whose digest is new, changed or gone.

    Every other row is kept: its period ended before both R and its window is the same, and
    everything of the person that can fall into that window is in the digest. High absence
    counts in the digest only for months that ended before R: a month still running can fall
    only into the windows of running periods, which are rebuilt anyway, and a month that
    ended since the last build is in the digest from now on. Nothing on a first or full
    build. -#}

{#- One row per person with any row the model reads: person_state, the sum of the 64-bit
    hashes of the person's rows (the same in any order; see int_pupil_states). -#}
{% macro child_agency_person_states() -%}
    select person_pseudonym, sum(row_hash) as person_state
    from (
        select person_pseudonym, hash('identity', birth_date) as row_hash
        from {{ ref('int_identities') }}
        where not is_protected
        union all
        select person_pseudonym, hash('pupil', pupil_state)
        from {{ ref('int_pupil_states') }}
        union all
        select person_pseudonym, hash('school', period_start)
        from {{ ref('fct_pupil_periods') }}
        where period_type = 'manad'
            and is_high_absence
            and period_end < {{ reference_date() }}
        union all
        select person_pseudonym, hash('social_services', involvement_type, start_date, end_date)
        from {{ ref('fct_social_services_involvement') }}
        union all
        select person_pseudonym, hash('police', roll, brottsdatum)
        from {{ ref('fct_police_events') }}
        where roll in ('Misstänkt', 'Målsägande')
    ) as person_rows
    group by person_pseudonym
{%- endmacro %}

{#- The report periods rebuilt for every person (period_type, period_start): new periods,
    periods whose window moved, and those that end on or after the earlier of this build's R
    and the last build's. -#}
{% macro child_agency_rebuilt_periods() -%}
    select periods.period_type, periods.period_start
    from {{ ref('int_periods') }} as periods
    left join {{ as_built('periods') }} as built
        on built.period_type = periods.period_type
        and built.period_start = periods.period_start
        and built.lookback_end = periods.lookback_end
        and built.trailing_window_start = periods.trailing_window_start
    where periods.is_report_period
        and (
            built.period_type is null
            or periods.period_end >= least(
                {{ reference_date() }},
                (select min(reference_date) from {{ as_built('periods') }})
            )
        )
{%- endmacro %}

{#- The persons whose digest is new, changed or gone since the last build: their pseudonym in
    this build (null when gone; all their periods are rebuilt) and in the last (null when
    new; their rows are deleted). -#}
{% macro child_agency_changed_persons() -%}
    select now.person_pseudonym, built.person_pseudonym as built_pseudonym
    from ({{ child_agency_person_states() }}) as now
    full join {{ as_built('persons') }} as built
        on built.person_pseudonym = now.person_pseudonym
    where built.person_state is distinct from now.person_state
{%- endmacro %}

{#- Post-hook of fct_child_agency_periods, in its transaction: keep what this build was made
    from (`kind`: 'persons' or 'periods'), on every build, full or not. -#}
{% macro record_child_agency_periods_as_built(kind) -%}
    {%- if kind == 'persons' -%}
        create or replace table {{ as_built('persons') }} as
        {{ child_agency_person_states() }}
    {%- else -%}
        create or replace table {{ as_built('periods') }} as
        select
            period_type,
            period_start,
            lookback_end,
            trailing_window_start,
            {{ reference_date() }} as reference_date
        from {{ ref('int_periods') }}
        where is_report_period
    {%- endif -%}
{%- endmacro %}
