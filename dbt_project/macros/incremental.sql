{#- Incremental attendance chain (README "Incremental nightly builds"). The bookkeeping model
    stg_ss12000__batch_lesson_days records every SS 12000 extract batch with the lesson days
    it touched; a batch is pending until int_ss12000__attendance_days has rebuilt those days
    (its post-hook marks it built in the same transaction). The models in between read the
    pending batches through these macros. -#}

{#- The local (Europe/Stockholm) date of a lesson's start: the day a lesson belongs to. -#}
{% macro local_lesson_date(start_time) -%}
    cast(timezone('Europe/Stockholm', {{ start_time }}) as date)
{%- endmacro %}

{#- A relation of the attendance chain: ref()/source() in models; looked up in the graph
    (without a dependency) when a data test's `where` is rendered (get_where_subquery). -#}
{% macro chain_relation(name, source_table=none, via_graph=false) -%}
    {%- if not via_graph -%}
        {{ return(source(name, source_table) if source_table else ref(name)) }}
    {%- endif -%}
    {%- if source_table -%}
        {%- set node = graph.sources['source.' ~ project_name ~ '.' ~ name ~ '.' ~ source_table] -%}
        {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.identifier)) }}
    {%- endif -%}
    {%- set node = graph.nodes['model.' ~ project_name ~ '.' ~ name] -%}
    {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}

{#- The SS 12000 batches not yet built into the attendance chain. -#}
{% macro pending_ss12000_batches(via_graph=false) -%}
    select batch_id
    from {{ chain_relation('stg_ss12000__batch_lesson_days', via_graph=via_graph) }}
    where not is_built
{%- endmacro %}

{#- True when a pending batch asks for every day (the bookkeeping was rebuilt from scratch,
    so the days of each batch were not worked out). -#}
{% macro pending_rebuild_of_all_days(via_graph=false) -%}
    exists (
        select 1
        from {{ chain_relation('stg_ss12000__batch_lesson_days', via_graph=via_graph) }}
        where not is_built and rebuilds_all_days
    )
{%- endmacro %}

{#- The lesson days the pending batches touched (see stg_ss12000__batch_lesson_days). -#}
{% macro pending_lesson_days(via_graph=false) -%}
    select distinct lesson_date
    from {{ chain_relation('stg_ss12000__batch_lesson_days', via_graph=via_graph) }}
    where not is_built and lesson_date is not null
{%- endmacro %}

{#- Ids of an SS 12000 table that the pending batches changed: a new version, or a deletion
    listed by /deletedEntities. -#}
{% macro pending_ss12000_ids(table, via_graph=false) -%}
    select id
    from {{ chain_relation('ss12000', table, via_graph) }}
    where batch_id in ({{ pending_ss12000_batches(via_graph) }})
    union
    select id
    from {{ chain_relation('ss12000', 'deleted_entities', via_graph) }}
    where {{ ss12000_deleted_type_is(table) }}
        and batch_id in ({{ pending_ss12000_batches(via_graph) }})
{%- endmacro %}

{#- Pre-hook of an incremental model rebuilt by key: delete the rows whose key the model
    recomputes (`keys`, a query with one column), in the transaction that inserts them again.
    Nothing on a first or full build. -#}
{% macro delete_rebuilt_rows(key_column, keys) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ key_column }} in ({{ keys }})
    {%- endif -%}
{%- endmacro %}

{#- The table beside the incremental mart being built (`this`) that holds what it was built
    from: <mart>__as_built_<kind> (fct_pupil_periods: 'pupils', 'parameters';
    fct_child_agency_periods: 'persons', 'periods'). -#}
{% macro as_built(kind) -%}
    {{ return(api.Relation.create(database=this.database, schema=this.schema,
                                  identifier=this.identifier ~ '__as_built_' ~ kind)) }}
{%- endmacro %}

{#- Pre-hook of an incremental mart with a row per person and period (fct_pupil_periods,
    fct_child_agency_periods): delete the rows it rebuilds, in the transaction that inserts
    them again: every row of the persons `changed_persons` lists (a query with the column
    built_pseudonym: the pseudonym the rows were built under), and every row of a period
    that `rebuilt_periods` lists (a query with period_type and period_start) or that
    int_periods no longer holds (with `reported_only`: no longer reports). Nothing on a first
    or full build. -#}
{% macro delete_rebuilt_person_periods(changed_persons, rebuilt_periods, reported_only=false) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where person_pseudonym in (
                select built_pseudonym from ({{ changed_persons }}) as changed
            )
            or not exists (
                select 1
                from {{ ref('int_periods') }} as kept
                where kept.period_type = {{ this }}.period_type
                    and kept.period_start = {{ this }}.period_start
                    {%- if reported_only %}
                    and kept.is_report_period
                    {%- endif %}
                    and not exists (
                        select 1
                        from ({{ rebuilt_periods }}) as rebuilt
                        where rebuilt.period_type = kept.period_type
                            and rebuilt.period_start = kept.period_start
                    )
            )
    {%- endif -%}
{%- endmacro %}

{#- The lesson days int_ss12000__attendance_days rebuilds on an incremental run: the days the
    pending batches touched, or every day when the bookkeeping asks for it (the days of every
    lesson, and every day of `days`: int_ss12000__attendance_days itself unless given). -#}
{% macro rebuilt_attendance_days(days=none) -%}
    select lesson_date
    from ({{ pending_lesson_days() }}) as touched
    union
    select {{ local_lesson_date('start_time') }} as lesson_date
    from {{ source('ss12000', 'calendar_events') }}
    where {{ pending_rebuild_of_all_days() }}
    union
    select lesson_date
    from {{ days if days is not none else this }}
    where {{ pending_rebuild_of_all_days() }}
{%- endmacro %}

{#- The calendar periods of int_ss12000__attendance_periods (int_periods' four types). -#}
{% macro calendar_period_types() -%}
    {{ return(['vecka', 'manad', 'termin', 'ar']) }}
{%- endmacro %}

{#- The first day of the calendar period of `period_type` that holds the date `day`: the ISO
    week's Monday (vecka), the month (manad), the term (termin: vt 1 January, ht 1 July), the
    year (ar). -#}
{% macro period_start(period_type, day) -%}
    {%- set truncated_to = {'vecka': 'week', 'manad': 'month', 'ar': 'year'} -%}
    {%- if period_type == 'termin' -%}
        make_date(year({{ day }}), case when month({{ day }}) <= 6 then 1 else 7 end, 1)
    {%- else -%}
        cast(date_trunc('{{ truncated_to[period_type] }}', {{ day }}) as date)
    {%- endif -%}
{%- endmacro %}

{#- (period_type, period_start) of every calendar period that holds a lesson_date of `days` (a
    query); without types, the distinct period starts only. -#}
{% macro periods_of_days(days, with_types=true) -%}
    {%- for period_type in calendar_period_types() %}
    select {% if with_types %}'{{ period_type }}' as period_type, {% endif -%}
        {{ period_start(period_type, 'lesson_date') }} as period_start
    from ({{ days }}) as of_days
    {{ 'union' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The calendar periods (period_type, period_start) int_ss12000__attendance_periods rebuilds
    on an incremental run: the periods of every day int_ss12000__attendance_days rebuilt
    (`days`), and every period it holds when the bookkeeping asks for every day. -#}
{% macro rebuilt_attendance_periods(days) -%}
    {{ periods_of_days(rebuilt_attendance_days(days)) }}
    union
    select period_type, period_start
    from {{ this }}
    where {{ pending_rebuild_of_all_days() }}
{%- endmacro %}

{#- The first days of the calendar periods of the lesson days the pending batches touched (a
    data test's `where`: see get_where_subquery). -#}
{% macro pending_period_starts(via_graph=false) -%}
    {{ periods_of_days(pending_lesson_days(via_graph), with_types=false) }}
{%- endmacro %}

{#- Pre-hook of int_ss12000__attendance_periods: delete the periods it rebuilds, in the
    transaction that inserts them again. Nothing on a first or full build. -#}
{% macro delete_rebuilt_periods(periods) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where exists (
            select 1
            from ({{ periods }}) as rebuilt
            where rebuilt.period_type = {{ this }}.period_type
                and rebuilt.period_start = {{ this }}.period_start
        )
    {%- endif -%}
{%- endmacro %}

{#- int_ss12000__attendance_periods: the `measures` of `relation` (a CTE with person_id) summed per
    person id and period, for each (period_type, period start expression) of `periods`; on an
    incremental run only the periods in its CTE rebuilt_periods. -#}
{% macro sums_per_period(relation, periods, measures) -%}
    {%- for period_type, start in periods %}
    select
        person_id,
        '{{ period_type }}' as period_type,
        {{ start }} as period_start,
        {%- for measure in measures %}
        sum({{ measure }}) as {{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ relation }}
    {%- if is_incremental() %}
    where {{ start }} in (select period_start from rebuilt_periods where period_type = '{{ period_type }}')
    {%- endif %}
    group by 1, 2, 3
    {{ 'union all' if not loop.last }}
    {%- endfor %}
{%- endmacro %}
