{#- The cells of an ind_* model (or of indicators) are well formed (INDICATOR_RULES.md,
    "Cells"): every published column is set, the period is a real one, an 'andel' cell has a
    denominator of at least 1 and a numerator of at least 0, an 'antal' cell has a count of
    at least 1, no denominator and value = count. For an ind_* model also: the period type is
    one of the four, and the unit, the area levels and the breakdowns are the model's own
    (`unit`, `area_levels`, `breakdowns`). One query instead of a not_null or accepted_values
    test per column (each a dbt node with its fixed cost). Fails for every offending row. -#}
{% test indicator_cells_are_well_formed(model, unit=none, area_levels=none, breakdowns=none) %}

with

cells as (

    select * from {{ model }}

),

offending as (

    select *
    from cells
    where indicator_id is null
        or indicator_name is null
        or period_type is null
        or period_start is null
        or period_end is null
        or period_end < period_start
        or area_level is null
        or area_code is null
        or area_name is null
        or breakdown is null
        or breakdown_value is null
        or numerator is null
        or value is null
        or unit is null
        or (unit = 'andel' and (denominator is null or denominator < 1 or numerator < 0))
        or (unit = 'antal' and (numerator < 1 or denominator is not null or value <> numerator))
        or period_type not in ('vecka', 'manad', 'termin', 'ar')
        {%- if unit is not none %}
        or unit <> '{{ unit }}'
        {%- endif %}
        {%- if area_levels is not none %}
        or area_level not in ('{{ area_levels | join("', '") }}')
        {%- endif %}
        {%- if breakdowns is not none %}
        or breakdown not in ('{{ breakdowns | join("', '") }}')
        {%- endif %}

)

select * from offending

{% endtest %}
