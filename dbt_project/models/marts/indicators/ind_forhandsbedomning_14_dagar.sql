{%- set deadline_days = var_int('forhandsbedomning_days') -%}

with

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

-- reports about children received in the period whose deadline has passed by R; a
-- decision dated after R has not happened yet, so such a report is late
due_reports as (

    select
        periods.period_type,
        periods.period_start,
        reports_of_concern.report_key,
        reports_of_concern.stadsdelsomrade_code,
        reports_of_concern.anmalare_kategori,
        coalesce(
            reports_of_concern.forhandsbedomning_datum
                <= reports_of_concern.inkom_datum + {{ deadline_days }},
            false
        ) as is_decided_in_time
    from reports_of_concern
    inner join periods
        on reports_of_concern.inkom_datum between periods.period_start and periods.period_end
    where reports_of_concern.is_child
        and reports_of_concern.inkom_datum + {{ deadline_days }} < {{ reference_date() }}

),

final as (

    {{ indicator_cube(
        'due_reports',
        areas='handling',
        breakdowns=['anmalare'],
        counted='report_key',
        numerator_when='is_decided_in_time'
    ) }}

)

select * from final
