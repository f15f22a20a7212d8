{#- Building blocks of the ind_* models. An indicator model first reduces its facts to one
    row per counted unit with month_start and stadsdelsomrade_code (null: the unit counts at
    city level only), then aggregates them with indicator_cells() and shapes the published
    columns with indicator_rows(). -#}

{#- Aggregate a relation into cells for the city and each stadsdelsområde.
    numerator / denominator are aggregate SQL expressions (denominator none for 'antal'). -#}
{% macro indicator_cells(relation, numerator, denominator=none, breakdown='totalt', breakdown_value='totalt') -%}
    select
        month_start,
        'stad' as area_level,
        {{ var_string('municipality_code') }} as area_code,
        {{ sql_string(breakdown) }} as breakdown,
        {{ sql_string(breakdown_value) }} as breakdown_value,
        {{ numerator }} as numerator,
        {{ denominator if denominator else 'cast(null as bigint)' }} as denominator
    from {{ relation }}
    group by month_start

    union all

    select
        month_start,
        'stadsdelsomrade' as area_level,
        stadsdelsomrade_code as area_code,
        {{ sql_string(breakdown) }} as breakdown,
        {{ sql_string(breakdown_value) }} as breakdown_value,
        {{ numerator }} as numerator,
        {{ denominator if denominator else 'cast(null as bigint)' }} as denominator
    from {{ relation }}
    where stadsdelsomrade_code is not null
    group by month_start, stadsdelsomrade_code
{%- endmacro %}

{#- The published columns (before suppression) for the cells of one indicator, restricted to
    the published months. A cell exists only when its count ('antal') or its denominator
    ('andel') is at least 1. The Swedish name comes from the model's YAML meta. -#}
{% macro indicator_rows(cells, indicator_id, unit) -%}
    {%- if unit not in ['andel', 'antal'] -%}
        {{ exceptions.raise_compiler_error("indicator unit must be 'andel' or 'antal', got '" ~ unit ~ "'") }}
    {%- endif -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- if meta.get('unit') and meta.get('unit') != unit -%}
        {{ exceptions.raise_compiler_error(indicator_id ~ ": unit '" ~ unit ~ "' differs from meta.unit '" ~ meta.get('unit') ~ "'") }}
    {%- endif -%}
    select
        {{ sql_string(indicator_id) }} as indicator_id,
        {{ sql_string(meta.get('indicator_name', '')) if meta.get('indicator_name') else 'cast(null as varchar)' }} as indicator_name,
        'manad' as period_type,
        months.month_start as period_start,
        months.month_end as period_end,
        cells.area_level,
        cells.area_code,
        case
            when cells.area_level = 'stad' then {{ var_string('municipality_name') }}
            else areas.stadsdelsomrade_name
        end as area_name,
        cells.breakdown,
        cells.breakdown_value,
        cast(cells.numerator as bigint) as numerator,
        cast(cells.denominator as bigint) as denominator,
        {% if unit == 'andel' -%}
        cast(cells.numerator as double) / cells.denominator as value,
        {%- else -%}
        cast(cells.numerator as double) as value,
        {%- endif %}
        {{ sql_string(unit) }} as unit
    from {{ cells }} as cells
    inner join {{ ref('int_months') }} as months
        on months.month_start = cells.month_start
        and months.is_report_month
    left join {{ ref('ref_stadsdelsomraden') }} as areas
        on cells.area_level = 'stadsdelsomrade'
        and areas.stadsdelsomrade_code = cells.area_code
    where {{ 'cells.denominator' if unit == 'andel' else 'cells.numerator' }} >= 1
{%- endmacro %}

{#- Primary suppression (privacy.md): an 'antal' cell with count < min_cell; an 'andel'
    cell with denominator < min_cell, numerator in 1..min_cell-1 or denominator - numerator
    in 1..min_cell-1. -#}
{% macro is_primary_suppressed(unit, numerator, denominator, min_cell) -%}
    case
        when {{ unit }} = 'antal' then {{ numerator }} < {{ min_cell }}
        when {{ unit }} = 'andel' then
            {{ denominator }} < {{ min_cell }}
            or {{ numerator }} between 1 and {{ min_cell }} - 1
            or ({{ denominator }} - {{ numerator }}) between 1 and {{ min_cell }} - 1
        else true
    end
{%- endmacro %}
