with

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

-- reports about children received in the period and decided by R
decided_reports as (

    select
        periods.period_type,
        periods.period_start,
        reports_of_concern.report_key,
        reports_of_concern.stadsdelsomrade_code,
        reports_of_concern.anmalare_kategori,
        reports_of_concern.beslut = 'Inleda utredning' as leads_to_investigation
    from reports_of_concern
    inner join periods
        on reports_of_concern.inkom_datum between periods.period_start and periods.period_end
    where reports_of_concern.is_child
        and reports_of_concern.beslut is not null
        and reports_of_concern.forhandsbedomning_datum <= {{ reference_date() }}

),

final as (

    {{ indicator_cube(
        'decided_reports',
        areas='handling',
        breakdowns=['anmalare'],
        counted='report_key',
        numerator_when='leads_to_investigation'
    ) }}

)

select * from final
