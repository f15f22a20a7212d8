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

{#- Map a district name (aktualisering.stadsdel, police Stadsdel) to ref_stadsdelar;
    blank or unknown names map to nothing (the event counts at city level only). -#}
{% macro district_key(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}
