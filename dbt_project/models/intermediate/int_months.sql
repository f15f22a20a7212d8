{#- Calendar months the models compute: the published months (month of R back
    report_months - 1 months) and the history their trailing 12-month windows need. -#}

with

bounds as (

    select
        {{ first_history_month() }} as first_month,
        {{ first_report_month() }} as first_report_month,
        cast(date_trunc('month', {{ reference_date() }}) as date) as last_month

),

months as (

    select cast(unnest(generate_series(
        cast(first_month as timestamp), cast(last_month as timestamp), interval 1 month
    )) as date) as month_start
    from bounds

),

final as (

    select
        months.month_start,
        cast(last_day(months.month_start) as date) as month_end,
        -- trailing 12 months end on the month's last day: (month_end - 12 months, month_end]
        cast(last_day(months.month_start) - interval 12 month as date) as trailing_window_start,
        months.month_start >= bounds.first_report_month as is_report_month,
        months.month_start = bounds.last_month as is_running_month
    from months
    cross join bounds

)

select * from final
