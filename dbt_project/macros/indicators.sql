{#- How an indicator's cells are built (INDICATOR_RULES.md, "Areas", "Breakdowns", "Cells").

    An ind_* model says WHAT is counted: it reduces its facts to one row per counted unit and
    period, with
      period_type, period_start          the period the unit counts in (any period; only the
                                          published periods of int_periods get cells),
      the counted unit                   e.g. person_pseudonym or report_key (counted once
                                          per cell),
      area columns                       stadsdelsomrade_code, sspf_omrade_code,
                                          school_unit_code (null: no row at that level; every
                                          unit counts in the city row),
      breakdown columns                  huvudman_kind, school_year, anmalare_kategori,
                                          brottskategori, antal_verksamheter (null: the unit
                                          is in no row of that breakdown),
      the numerator                      a boolean column ('andel' over counted units) or
                                          numerator / denominator columns to sum ('andel' of
                                          sums, e.g. minutes),
    and calls indicator_cube(). The macro says HOW: one grouping set per area level ×
    breakdown (totalt and each breakdown, never two breakdowns crossed), a cell only when
    its count ('antal') or denominator ('andel') is at least 1, only published periods,
    area names from dim_areas, the published columns, and the indicator's id and name from
    the model's YAML meta. -#}

{#- The column of the counted rows that places a unit at an area level. -#}
{% macro indicator_area_column(level) -%}
    {%- set columns = {
        'stad': required_var_string('municipality_code'),
        'stadsdelsomrade': 'stadsdelsomrade_code',
        'sspf_omrade': 'sspf_omrade_code',
        'skolenhet': 'school_unit_code',
    } -%}
    {%- if level not in columns -%}
        {{ exceptions.raise_compiler_error("unknown area level '" ~ level ~ "'") }}
    {%- endif -%}
    {{- columns[level] -}}
{%- endmacro %}

{#- The column of the counted rows that holds a unit's breakdown value. -#}
{% macro indicator_breakdown_column(breakdown) -%}
    {%- set columns = {
        'huvudman': 'huvudman_kind',
        'arskurs': 'cast(school_year as varchar)',
        'anmalare': 'anmalare_kategori',
        'brottskategori': 'brottskategori',
        'antal_verksamheter': 'antal_verksamheter',
    } -%}
    {%- if breakdown not in columns -%}
        {{ exceptions.raise_compiler_error("unknown breakdown '" ~ breakdown ~ "'") }}
    {%- endif -%}
    {{- columns[breakdown] -}}
{%- endmacro %}

{#- Area levels of an indicator (INDICATOR_RULES.md, "Area levels per indicator"): 'school'
    and 'district' are stad, stadsdelsomrade and sspf_omrade (by the school area or the
    police offence district of the unit: the indicator model fills the area columns
    accordingly); 'school_and_unit' adds skolenhet; 'handling' (the case system's handling
    stadsdelsområde) is stad and stadsdelsomrade only: the case system cannot place a matter
    in an SSPF area, so such cells do not exist. The model's meta.area_levels must list the
    same levels (the report and INDICATOR_RULES.md read them). -#}
{% macro indicator_area_levels(areas) -%}
    {%- set levels = {
        'school': ['stad', 'stadsdelsomrade', 'sspf_omrade'],
        'district': ['stad', 'stadsdelsomrade', 'sspf_omrade'],
        'handling': ['stad', 'stadsdelsomrade'],
        'school_and_unit': ['stad', 'stadsdelsomrade', 'sspf_omrade', 'skolenhet'],
    } -%}
    {%- if areas not in levels -%}
        {{ exceptions.raise_compiler_error("areas must be one of " ~ (levels.keys() | list) ~ ", got '" ~ areas ~ "'") }}
    {%- endif -%}
    {{- return(levels[areas]) -}}
{%- endmacro %}

{#- The ind_* model being built: the model itself, or the model a unit test tests
    (unique_id unit_test.<project>.<model>.<test>). -#}
{% macro indicator_model_name() -%}
    {%- if model.resource_type == 'unit_test' -%}
        {{- return(model.unique_id.split('.')[2]) -}}
    {%- endif -%}
    {{- return(model.name) -}}
{%- endmacro %}

{#- The published columns (before suppression, plus contributors) of one indicator.
      counted_rows      relation (CTE name) with one row per counted unit and period
      areas             'school', 'school_and_unit', 'district' or 'handling'
      breakdowns        breakdown names besides 'totalt', e.g. ['huvudman', 'arskurs']
      counted           column identifying the counted unit (distinct per cell)
      numerator_when    'andel' of counted units: boolean column, true for the numerator
      sum_numerator, sum_denominator
                        'andel' of sums: columns summed per cell (e.g. minutes)
      contributors_when with sums: boolean column, true for the units that contribute to
                        the cell (their distinct count is the cell's contributors)
      one_row_per_unit  true when counted_rows holds at most one row per counted unit and
                        period (e.g. rows of fct_pupil_periods, unique per pupil and period,
                        which its data test checks): a unit then falls in at most one group
                        of each grouping set, so count(*) gives the distinct count, without
                        a distinct hash table per cell (about 15x faster over every pupil
                        and period)
    The unit is 'andel' with numerator_when or the sums, else 'antal'; indicator_id,
    indicator_name, unit and area_levels are checked against the model's config.meta. -#}
{% macro indicator_cube(counted_rows, areas, breakdowns=[], counted='person_pseudonym',
                        numerator_when=none, sum_numerator=none, sum_denominator=none,
                        contributors_when=none, one_row_per_unit=false) -%}
    {#- The unit follows from what is counted; the YAML meta (known when the model runs, not
        while parsing or in its unit tests) must agree and names the indicator. -#}
    {%- set model_name = indicator_model_name() -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- set sums = sum_numerator is not none or sum_denominator is not none -%}
    {%- set unit = 'andel' if (numerator_when or sums) else 'antal' -%}
    {%- set indicator_id = meta.get('indicator_id') or model_name[4:] -%}
    {%- if execute and model.resource_type == 'model' -%}
        {%- if model_name != 'ind_' ~ indicator_id -%}
            {{ exceptions.raise_compiler_error(model_name ~ ": meta.indicator_id must be the model name without 'ind_', got '" ~ indicator_id ~ "'") }}
        {%- elif not meta.get('indicator_name') -%}
            {{ exceptions.raise_compiler_error(model_name ~ ": meta.indicator_name is missing") }}
        {%- elif meta.get('unit') != unit -%}
            {{ exceptions.raise_compiler_error(model_name ~ ": meta.unit is '" ~ meta.get('unit') ~ "' but the model counts an '" ~ unit ~ "'") }}
        {%- elif sums and not (sum_numerator and sum_denominator) -%}
            {{ exceptions.raise_compiler_error(model_name ~ ": sum_numerator and sum_denominator go together") }}
        {%- elif numerator_when and sums -%}
            {{ exceptions.raise_compiler_error(model_name ~ ": give numerator_when or the sums, not both") }}
        {%- elif (meta.get('area_levels') or []) | list != indicator_area_levels(areas) -%}
            {{ exceptions.raise_compiler_error(model_name ~ ": meta.area_levels is " ~ meta.get('area_levels') ~ " but the model publishes " ~ indicator_area_levels(areas)) }}
        {%- endif -%}
    {%- endif -%}

    {%- set units = 'count(*)' if one_row_per_unit else 'count(distinct ' ~ counted ~ ')' -%}
    {%- if unit == 'antal' -%}
        {%- set numerator = units -%}
        {%- set denominator = 'cast(null as bigint)' -%}
    {%- elif sums -%}
        {%- set numerator = 'sum(' ~ sum_numerator ~ ')' -%}
        {%- set denominator = 'sum(' ~ sum_denominator ~ ')' -%}
    {%- else -%}
        {%- set numerator = units ~ ' filter (where ' ~ numerator_when ~ ')' -%}
        {%- set denominator = units -%}
    {%- endif -%}
    {%- if contributors_when -%}
        {%- set contributors = units ~ ' filter (where ' ~ contributors_when ~ ')' -%}
    {%- else -%}
        {%- set contributors = 'cast(null as bigint)' -%}
    {%- endif -%}

    {%- set levels = indicator_area_levels(areas) -%}
    {%- set area_levels = levels | reject('equalto', 'stad') | list -%}

    select
        {{ sql_string(indicator_id) }} as indicator_id,
        {{ sql_string(meta.get('indicator_name')) if meta.get('indicator_name') else 'cast(null as varchar)' }} as indicator_name,
        cells.period_type,
        cells.period_start,
        periods.period_end,
        cells.area_level,
        cells.area_code,
        areas.area_name,
        cells.breakdown,
        cells.breakdown_value,
        cast(cells.numerator as bigint) as numerator,
        cast(cells.denominator as bigint) as denominator,
        {% if unit == 'andel' -%}
        cast(cells.numerator as double) / cells.denominator as value,
        {%- else -%}
        cast(cells.numerator as double) as value,
        {%- endif %}
        {{ sql_string(unit) }} as unit,
        cast(cells.contributors as bigint) as contributors
    from (
        -- one grouping set per area level x (totalt and each breakdown); the set a row comes
        -- from says its area level and breakdown; units without a code or value at a level
        -- or breakdown form a null group there, which is no cell
        select
            period_type,
            period_start,
            case
                {%- for level in area_levels %}
                when grouping(area_{{ level }}) = 0 then {{ sql_string(level) }}
                {%- endfor %}
                else 'stad'
            end as area_level,
            case
                {%- for level in area_levels %}
                when grouping(area_{{ level }}) = 0 then area_{{ level }}
                {%- endfor %}
                else {{ indicator_area_column('stad') }}
            end as area_code,
            {%- if breakdowns %}
            case
                {%- for breakdown in breakdowns %}
                when grouping(breakdown_{{ breakdown }}) = 0 then {{ sql_string(breakdown) }}
                {%- endfor %}
                else 'totalt'
            end as breakdown,
            case
                {%- for breakdown in breakdowns %}
                when grouping(breakdown_{{ breakdown }}) = 0 then breakdown_{{ breakdown }}
                {%- endfor %}
                else 'totalt'
            end as breakdown_value,
            {%- else %}
            'totalt' as breakdown,
            'totalt' as breakdown_value,
            {%- endif %}
            {{ numerator }} as numerator,
            {{ denominator }} as denominator,
            {{ contributors }} as contributors
        from (
            select
                {{ counted_rows }}.*
                {%- for level in area_levels %},
                {{ indicator_area_column(level) }} as area_{{ level }}
                {%- endfor %}
                {%- for breakdown in breakdowns %},
                {{ indicator_breakdown_column(breakdown) }} as breakdown_{{ breakdown }}
                {%- endfor %}
            from {{ counted_rows }}
        ) as counted_units
        group by grouping sets (
            {%- for level in levels %}
            {%- set level_loop = loop %}
            {%- for breakdown in [none] + breakdowns %}
            (period_type, period_start
                {%- if level != 'stad' %}, area_{{ level }}{% endif %}
                {%- if breakdown %}, breakdown_{{ breakdown }}{% endif %})
                {%- if not (level_loop.last and loop.last) %},{% endif %}
            {%- endfor %}
            {%- endfor %}
        )
    ) as cells
    inner join {{ ref('int_periods') }} as periods
        on periods.period_type = cells.period_type
        and periods.period_start = cells.period_start
        and periods.is_report_period
    left join {{ ref('dim_areas') }} as areas
        on areas.area_level = cells.area_level
        and areas.area_code = cells.area_code
    where cells.area_code is not null
        and cells.breakdown_value is not null
        and cells.{{ 'denominator' if unit == 'andel' else 'numerator' }} >= 1
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
