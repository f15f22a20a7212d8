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

{#- The lesson days int_ss12000__attendance_days rebuilds on an incremental run: the days the
    pending batches touched, or every day when the bookkeeping asks for it. -#}
{% macro rebuilt_attendance_days() -%}
    select lesson_date
    from ({{ pending_lesson_days() }}) as touched
    union
    select {{ local_lesson_date('start_time') }} as lesson_date
    from {{ source('ss12000', 'calendar_events') }}
    where {{ pending_rebuild_of_all_days() }}
    union
    select lesson_date
    from {{ this }}
    where {{ pending_rebuild_of_all_days() }}
{%- endmacro %}
