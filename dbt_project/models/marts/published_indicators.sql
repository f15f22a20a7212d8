{#- The published long table (indicators.md): one row per cell, with primary suppression
    (privacy.md). Suppressed rows carry no numerator, denominator or value. Targets and
    status come with the follow-up model; data_version names the publication. -#}

with

indicators as (

    select * from {{ ref('indicators') }}

),

flagged as (

    select
        indicators.*,
        {{ is_primary_suppressed('unit', 'numerator', 'denominator', var_number('min_cell')) }} as is_suppressed
    from indicators

),

final as (

    select
        indicator_id,
        indicator_name,
        period_type,
        period_start,
        period_end,
        area_level,
        area_code,
        area_name,
        breakdown,
        breakdown_value,
        case when is_suppressed then null else numerator end as numerator,
        case when is_suppressed then null else denominator end as denominator,
        case when is_suppressed then null else value end as value,
        unit,
        case when is_suppressed then 'primär' end as suppressed,
        cast(null as double) as target,
        cast(null as varchar) as status,
        {{ var_string('data_version') }} as data_version
    from flagged

)

select * from final
