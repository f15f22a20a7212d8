with

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

-- every report about a child received in the period counts (reports, not people)
reports_in_period as (

    select
        periods.period_type,
        periods.period_start,
        reports_of_concern.report_key,
        reports_of_concern.stadsdelsomrade_code,
        reports_of_concern.anmalare_kategori
    from reports_of_concern
    inner join periods
        on reports_of_concern.inkom_datum between periods.period_start and periods.period_end
    where reports_of_concern.is_child

),

final as (

    {{ indicator_cube(
        'reports_in_period',
        areas='handling',
        breakdowns=['anmalare'],
        counted='report_key'
    ) }}

)

select * from final
