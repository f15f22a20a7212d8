{#- Newest version wins: keep one row per key, the one with the latest modification time;
    ties go to the batch loaded last, then the higher batch id. Use after a `from` that
    exposes `loaded_at` and `batch_id`. -#}
{% macro keep_newest(partition_by, modified_at, extra_order_by=none) -%}
    qualify row_number() over (
        partition by {{ partition_by }}
        order by {{ modified_at }} desc nulls last, loaded_at desc nulls last, batch_id desc
        {%- if extra_order_by %}, {{ extra_order_by }}{% endif %}
    ) = 1
{%- endmacro %}

{#- SS 12000 /deletedEntities names entity types by endpoint ('calendarEvents', ...);
    compare them case- and separator-insensitively. -#}
{% macro ss12000_entity_type(column) -%}
    lower(regexp_replace({{ column }}, '[^A-Za-z]', '', 'g'))
{%- endmacro %}

{#- Map a district name (aktualisering.stadsdel, police Stadsdel) to ref_stadsdelar: trimmed
    and matched exactly (INDICATOR_RULES.md, "Areas"); blank or unknown names map to nothing
    (the event counts at city level only). -#}
{% macro district_key(column) -%}
    nullif(trim({{ column }}), '')
{%- endmacro %}

{#- The live rows of an append-only raw table: the newest version of each id (keep_newest)
    with the loaded_at of its batch, minus the ids that removed_ids (a query with one
    column `id`) lists as deleted (an anti join: DuckDB 1.5 planned the `not exists` it
    replaced so that, with no deleted ids at all, it took 7.6 s over 37.9 M attendance records
    instead of 0.6 s). The window runs over the few columns that choose the
    version (id, modification time, batch) and the row's position (rowid); the chosen rows
    are then read with all their columns, so the window never holds whole rows (the raw
    attendance table has every version of every record). With only_ids (a query with one
    column `id`), only those ids are read: an incremental model rebuilds the ids a batch
    changed. -#}
{% macro newest_live_rows(relation, id_column, modified_at, removed_ids, only_ids=none) -%}
    select
        versions.*,
        newest.loaded_at
    from {{ relation }} as versions
    inner join (
        select candidates.rowid as version_row, batches.loaded_at
        from {{ relation }} as candidates
        left join (
            select batch_id, loaded_at from {{ source('load_meta', 'batches') }}
        ) as batches using (batch_id)
        anti join (
            {%- for line in (removed_ids | string).strip().splitlines() %}
            {{ line.strip() }}
            {%- endfor %}
        ) as removed
            on removed.id = candidates.{{ id_column }}
        {%- if only_ids is not none %}
        where candidates.{{ id_column }} in (
            {%- for line in (only_ids | string).strip().splitlines() %}
            {{ line.strip() }}
            {%- endfor %}
        )
        {%- endif %}
        {{ keep_newest('candidates.' ~ id_column, 'candidates.' ~ modified_at) }}
    ) as newest
        on newest.version_row = versions.rowid
    {%- if only_ids is not none %}
    where versions.{{ id_column }} in (
        {%- for line in (only_ids | string).strip().splitlines() %}
        {{ line.strip() }}
        {%- endfor %}
    )
    {%- endif %}
{%- endmacro %}

{#- Live rows of an SS 12000 table: newest version by modified_at of each id, minus the ids
    /deletedEntities lists for its endpoint (the table name without separators, e.g.
    calendar_events -> calendarEvents). -#}
{% macro ss12000_live_rows(table, only_ids=none) -%}
    {%- set deleted -%}
        select id
        from {{ source('ss12000', 'deleted_entities') }}
        where {{ ss12000_deleted_type_is(table) }}
    {%- endset -%}
    {{ newest_live_rows(source('ss12000', table), 'id', 'modified_at', deleted, only_ids) }}
{%- endmacro %}

{#- A deleted_entities row of the endpoint of `table` (calendar_events -> calendarEvents). -#}
{% macro ss12000_deleted_type_is(table, column='entity_type') -%}
    {{ ss12000_entity_type(column) }} = {{ sql_string(modules.re.sub('[^a-z]', '', table.lower())) }}
{%- endmacro %}

{#- Live rows of a case-system table: newest version by andrad_tid of each <table>_id,
    minus the rows gallring lists as weeded from that table. -#}
{% macro case_system_live_rows(table) -%}
    {%- set weeded -%}
        select rad_id as id
        from {{ source('case_system', 'gallring') }}
        where lower(trim(tabell)) = {{ sql_string(table) }}
    {%- endset -%}
    {{ newest_live_rows(source('case_system', table), table ~ '_id', 'andrad_tid', weeded) }}
{%- endmacro %}

{#- A district name as the load report shows it: a value that could carry an identifier (four
    digits in a row) or is too long to be a name is shown as '(oläsligt värde)'. -#}
{% macro readable_district(column) -%}
    case
        when regexp_matches({{ column }}, '[0-9]{4}') or length({{ column }}) > 60 then '(oläsligt värde)'
        else {{ column }}
    end
{%- endmacro %}
