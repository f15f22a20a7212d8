{#- The periods the models compute, the one place that defines them (INDICATOR_RULES.md,
    "Periods"): every ISO week (vecka), month (manad), school term (termin: vt 1 Jan - 30 Jun,
    ht 1 Jul - 31 Dec) and year (ar) that overlaps the report window [window start, R]
    (published), plus the calendar months the trailing windows of "known to school" reach
    and the weeks before the lägesbild's week that its trailing average compares with.
    Every look-back (trailing window) ends at lookback_end = least(period_end, R): for the
    running period (period_end > R) at R, so that running periods of different types that
    hold the same data agree. -#}

{%- set trailing_months = var_int('trailing_months', 1) -%}
{%- set lagesbild_weeks = var_int('lagesbild_trailing_weeks', 1) -%}

with

bounds as (

    select
        {{ reference_date() }} as reference_date,
        {{ report_window_start() }} as window_start

),

-- the first period of each type: the one that contains the window's first day
first_periods as (

    select 'vecka' as period_type, cast(date_trunc('week', window_start) as date) as first_start,
        interval 7 day as length
    from bounds
    union all
    select 'manad' as period_type, window_start as first_start, interval 1 month as length
    from bounds
    union all
    select 'termin' as period_type,
        make_date(year(window_start), case when month(window_start) <= 6 then 1 else 7 end, 1)
            as first_start,
        interval 6 month as length
    from bounds
    union all
    select 'ar' as period_type, cast(date_trunc('year', window_start) as date) as first_start,
        interval 1 year as length
    from bounds

),

-- every period from the first one to the one that contains R: these overlap the window
published as (

    select
        first_periods.period_type,
        cast(unnest(generate_series(
            cast(first_periods.first_start as timestamp),
            cast(bounds.reference_date as timestamp),
            first_periods.length
        )) as date) as period_start,
        first_periods.length
    from first_periods
    cross join bounds

),

published_bounds as (

    select
        period_type,
        period_start,
        cast(period_start + length - interval 1 day as date) as period_end,
        true as is_report_period
    from published

),

-- months whose last day can lie in a trailing window of a published period
history_months as (

    select
        'manad' as period_type,
        cast(unnest(generate_series(
            cast(date_trunc('month', min(least(period_end, bounds.reference_date)) - to_months({{ trailing_months }})) as timestamp),
            cast(max(bounds.window_start) as timestamp),
            interval 1 month
        )) as date) as period_start
    from published_bounds
    cross join bounds

),

-- the lägesbild's week W (the latest week ended by R), W - 1 and the trailing weeks before
-- them, which the report window may not reach when report_months is small
lagesbild_weeks as (

    select
        'vecka' as period_type,
        cast(unnest(generate_series(
            cast(date_trunc('week', reference_date) - to_days({{ 7 * (lagesbild_weeks + 2) }}) as timestamp),
            cast(date_trunc('week', reference_date) as timestamp),
            interval 7 day
        )) as date) as period_start
    from bounds

),

extra_periods as (

    select
        period_type,
        period_start,
        cast(case
            when period_type = 'vecka' then period_start + interval 6 day
            else last_day(period_start)
        end as date) as period_end,
        false as is_report_period
    from (
        select * from history_months
        union all
        select * from lagesbild_weeks
    ) as extra
    where not exists (
        select 1
        from published_bounds
        where published_bounds.period_type = extra.period_type
            and published_bounds.period_start = extra.period_start
    )

),

all_periods as (

    select * from published_bounds
    union all
    select * from extra_periods

),

anchored as (

    select
        all_periods.*,
        -- the end of every look-back: the period's last day, or R for the running period
        -- (a running year and its running term look back over the same days)
        least(all_periods.period_end, bounds.reference_date) as lookback_end,
        all_periods.period_end > bounds.reference_date as is_running_period
    from all_periods
    cross join bounds

),

final as (

    select
        period_type,
        period_start,
        period_end,
        -- the period as one integer, the same in every build: the key of the tall per-pupil
        -- tables before fct_pupil_periods (DuckDB writes integers an order faster than text)
        (case period_type when 'vecka' then 1 when 'manad' then 2 when 'termin' then 3 else 4 end)
            * 100000 + (period_start - date '2000-01-01') as period_key,
        lookback_end,
        -- trailing window: (trailing_window_start, lookback_end]
        cast(lookback_end - to_months({{ trailing_months }}) as date) as trailing_window_start,
        is_report_period,
        is_running_period
    from anchored

)

select * from final
