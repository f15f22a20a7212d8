{#- The published long table (indicators.md): one row per cell, with primary suppression
    (privacy.md, INDICATOR_RULES.md "Suppression") and the follow-up model (target and
    status, INDICATOR_RULES.md "Follow-up (målstyrning)"). Suppressed rows carry no
    numerator, denominator, value or status; a running period or one a source does not cover
    (is_running, coverage) carries no status; data_version names the publication. -#}

with

indicators as (

    select * from {{ ref('indicators') }}

),

period_coverage as (

    select * from {{ ref('indicator_period_coverage') }}

),

indicator_targets as (

    select * from {{ ref('stg_reference__indicator_targets') }}

),

targets as (

    select
        indicator_id,
        nullif(trim(area_level), '') as area_level,
        nullif(trim(area_code), '') as area_code,
        cast(target as decimal(9, 6)) as target,
        direction,
        cast(tolerance as decimal(9, 6)) as tolerance
    from indicator_targets

),

flagged as (

    select
        indicators.*,
        {{ is_primary_suppressed('unit', 'numerator', 'denominator', var_number('min_cell')) }}
            -- cells whose numbers are not counts of people: too few people behind them
            or coalesce(indicators.contributors < {{ var_number('min_cell') }}, false)
            as is_suppressed,
        -- the running period (period_end > R) and a period a source does not cover get no
        -- status (INDICATOR_RULES.md, "Running periods and data coverage")
        coalesce(period_coverage.is_running, false) as is_running,
        period_coverage.coverage
    from indicators
    left join period_coverage
        on period_coverage.indicator_id = indicators.indicator_id
        and period_coverage.period_type = indicators.period_type
        and period_coverage.period_start = indicators.period_start

),

-- the most specific matching target of each cell: area_code, then area_level, then the
-- indicator's default (blank area_level / area_code match every area)
with_target as (

    select
        flagged.*,
        targets.target,
        targets.direction,
        targets.tolerance
    from flagged
    left join targets
        on targets.indicator_id = flagged.indicator_id
        and flagged.unit = 'andel'
        and (targets.area_level is null or targets.area_level = flagged.area_level)
        and (targets.area_code is null or targets.area_code = flagged.area_code)
    qualify row_number() over (
        partition by
            flagged.indicator_id, flagged.period_type, flagged.period_start, flagged.area_level,
            flagged.area_code, flagged.breakdown, flagged.breakdown_value
        order by
            targets.area_code is not null desc,
            targets.area_level is not null desc
    ) = 1

),

-- value against target, compared exactly: numerator / denominator <= t is
-- numerator <= t * denominator (decimal arithmetic, no floating-point rounding at the edges)
with_status as (

    select
        with_target.*,
        case
            when is_suppressed or target is null or denominator is null or denominator < 1 then null
            when is_running or coverage is not null then null
            when direction = 'lägre' then
                case
                    when numerator <= target * denominator then 'grön'
                    when numerator <= (target + tolerance) * denominator then 'gul'
                    else 'röd'
                end
            when direction = 'högre' then
                case
                    when numerator >= target * denominator then 'grön'
                    when numerator >= (target - tolerance) * denominator then 'gul'
                    else 'röd'
                end
        end as status
    from with_target

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
        cast(target as double) as target,
        status,
        is_running,
        coverage,
        {{ data_version() }} as data_version
    from with_status

)

select * from final
