{#- The published weekly lägesbild (INDICATOR_RULES.md "Weekly lägesbild"): for W and for
    the city and each SSPF area, each count measure by category with its value in W and its
    trailing average over the lagesbild_trailing_weeks weeks before W, with primary
    suppression (a count, or the total behind a trailing average, in 1..min_cell − 1), and
    the indicators whose weekly city/area cell turned red. -#}

{%- set trailing_weeks = var_int('lagesbild_trailing_weeks', 1) %}
{%- set min_cell = var_number('min_cell') %}

with

weeks as (

    select * from {{ ref('lagesbild_weeks') }}

),

weekly_counts as (

    select * from {{ ref('lagesbild_weekly_counts') }}

),

published_indicators as (

    select * from {{ ref('published_indicators') }}

),

sspf_omraden as (

    select * from {{ ref('stg_reference__sspf_omraden') }}

),

lagesbild_week as (

    select week_start, week_end, iso_week
    from weeks
    where is_lagesbild_week

),

areas as (

    select
        'stad' as area_level,
        {{ required_var_string('municipality_code') }} as area_code,
        {{ required_var_string('municipality_name') }} as area_name

    union all

    select
        'sspf_omrade' as area_level,
        sspf_omrade_code as area_code,
        sspf_omrade_name as area_name
    from sspf_omraden

),

-- is_city_only: the case system places a report in the stadsdelsområde that handles it,
-- never in an SSPF area, so new reports of concern have the city row only (no SSPF row,
-- not even a 0: the report says the figure is not available at that level)
measures as (

    select * from (values
        (1, 'nya_orosanmalningar', 'Nya orosanmälningar', true),
        (2, 'nya_unga_misstankta', 'Nya unga misstänkta', false),
        (3, 'passerat_hog_franvaro', 'Elever som passerat gränsen för hög frånvaro', false),
        (4, 'rod_status', 'Indikatorer som blivit röda', false)
    ) as measures (measure_order, measure, measure_name, is_city_only)

),

-- W's count and the total over the trailing weeks of every (area, measure, category) that
-- is non-zero in any of these weeks
count_totals as (

    select
        weekly_counts.area_level,
        weekly_counts.area_code,
        weekly_counts.measure,
        weekly_counts.category,
        coalesce(sum(weekly_counts.unit_count) filter (where weeks.is_lagesbild_week), 0) as week_count,
        coalesce(sum(weekly_counts.unit_count) filter (where weeks.is_trailing_week), 0) as trailing_total
    from weekly_counts
    inner join weeks
        on weeks.week_offset = weekly_counts.week_offset
    group by weekly_counts.area_level, weekly_counts.area_code, weekly_counts.measure, weekly_counts.category

),

-- the 'totalt' row of every area and count measure placed at its level, also when it is 0
totalt_rows as (

    select
        areas.area_level,
        areas.area_code,
        measures.measure,
        'totalt' as category
    from areas
    cross join measures
    where measures.measure <> 'rod_status'
        and (areas.area_level = 'stad' or not measures.is_city_only)

),

count_rows as (

    select
        coalesce(totalt_rows.area_level, count_totals.area_level) as area_level,
        coalesce(totalt_rows.area_code, count_totals.area_code) as area_code,
        coalesce(totalt_rows.measure, count_totals.measure) as measure,
        coalesce(totalt_rows.category, count_totals.category) as category,
        coalesce(count_totals.week_count, 0) as week_count,
        coalesce(count_totals.trailing_total, 0) as trailing_total
    from totalt_rows
    full outer join count_totals
        on count_totals.area_level = totalt_rows.area_level
        and count_totals.area_code = totalt_rows.area_code
        and count_totals.measure = totalt_rows.measure
        and count_totals.category = totalt_rows.category

),

counts_suppressed as (

    select
        count_rows.*,
        week_count between 1 and {{ min_cell }} - 1 as is_value_suppressed,
        trailing_total between 1 and {{ min_cell }} - 1 as is_trailing_suppressed
    from count_rows

),

-- the weekly (vecka, totalt) cells of the city and the SSPF areas
weekly_status as (

    select
        indicator_id,
        indicator_name,
        area_level,
        area_code,
        period_start,
        status
    from published_indicators
    where period_type = 'vecka'
        and breakdown = 'totalt'
        and area_level in ('stad', 'sspf_omrade')

),

-- red in W, not red in W − 1 (another status, suppressed, or no cell)
turned_red as (

    select
        this_week.area_level,
        this_week.area_code,
        this_week.indicator_id,
        this_week.indicator_name
    from weekly_status as this_week
    inner join lagesbild_week
        on this_week.period_start = lagesbild_week.week_start
    left join weekly_status as previous_week
        on previous_week.indicator_id = this_week.indicator_id
        and previous_week.area_level = this_week.area_level
        and previous_week.area_code = this_week.area_code
        and previous_week.period_start = lagesbild_week.week_start - 7
    where this_week.status = 'röd'
        and previous_week.status is distinct from 'röd'

),

lagesbild_rows as (

    select
        area_level,
        area_code,
        measure,
        category,
        case
            when category = 'totalt' then 'Totalt'
            else upper(left(category, 1)) || substr(category, 2)
        end as category_name,
        case when is_value_suppressed then null else cast(week_count as double) end as value,
        case
            when is_trailing_suppressed then null
            else cast(trailing_total as double) / {{ trailing_weeks }}
        end as trailing_average,
        case when is_value_suppressed then 'primär' end as suppressed,
        case when is_trailing_suppressed then 'primär' end as trailing_average_suppressed
    from counts_suppressed

    union all

    select
        area_level,
        area_code,
        'rod_status' as measure,
        indicator_id as category,
        indicator_name as category_name,
        cast(null as double) as value,
        cast(null as double) as trailing_average,
        cast(null as varchar) as suppressed,
        cast(null as varchar) as trailing_average_suppressed
    from turned_red

),

final as (

    select
        lagesbild_week.week_start,
        lagesbild_week.week_end,
        lagesbild_week.iso_week,
        lagesbild_rows.area_level,
        lagesbild_rows.area_code,
        areas.area_name,
        lagesbild_rows.measure,
        measures.measure_name,
        lagesbild_rows.category,
        lagesbild_rows.category_name,
        lagesbild_rows.value,
        lagesbild_rows.trailing_average,
        lagesbild_rows.suppressed,
        lagesbild_rows.trailing_average_suppressed,
        {{ data_version() }} as data_version
    from lagesbild_rows
    cross join lagesbild_week
    inner join areas
        on areas.area_level = lagesbild_rows.area_level
        and areas.area_code = lagesbild_rows.area_code
    inner join measures
        on measures.measure = lagesbild_rows.measure

)

select * from final
