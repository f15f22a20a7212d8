with

investigations as (

    select * from {{ ref('fct_investigations') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

-- investigations of children (0-17 on startdatum) closed in the period, by R; each counts
closed_investigations as (

    select
        periods.period_type,
        periods.period_start,
        investigations.investigation_key,
        investigations.stadsdelsomrade_code,
        investigations.avslutsdatum
            <= investigations.startdatum + to_months({{ var_int('investigation_months') }}) as is_closed_in_time
    from investigations
    inner join periods
        on investigations.avslutsdatum between periods.period_start and periods.period_end
    where investigations.is_child
        and investigations.avslutsdatum <= {{ reference_date() }}

),

final as (

    {{ indicator_cube(
        'closed_investigations',
        areas='handling',
        counted='investigation_key',
        numerator_when='is_closed_in_time'
    ) }}

)

select * from final
