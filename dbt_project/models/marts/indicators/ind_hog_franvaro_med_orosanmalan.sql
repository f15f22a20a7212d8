with

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

-- the denominator: pupils with high absence in the period (enrolled and assessed)
high_absence as (

    select
        pupil_periods.period_type,
        pupil_periods.period_start,
        pupil_periods.person_pseudonym,
        pupil_periods.stadsdelsomrade_code,
        pupil_periods.sspf_omrade_code,
        periods.trailing_window_start,
        periods.lookback_end
    from pupil_periods
    inner join periods
        on periods.period_type = pupil_periods.period_type
        and periods.period_start = pupil_periods.period_start
    where pupil_periods.is_high_absence

),

-- at least one report of concern (any age) received in the trailing window
with_report as (

    select distinct
        high_absence.person_pseudonym,
        high_absence.period_type,
        high_absence.period_start
    from high_absence
    inner join reports_of_concern
        on reports_of_concern.person_pseudonym = high_absence.person_pseudonym
        and reports_of_concern.inkom_datum > high_absence.trailing_window_start
        and reports_of_concern.inkom_datum <= high_absence.lookback_end

),

flagged as (

    select
        high_absence.*,
        with_report.person_pseudonym is not null as has_report
    from high_absence
    left join with_report
        on with_report.person_pseudonym = high_absence.person_pseudonym
        and with_report.period_type = high_absence.period_type
        and with_report.period_start = high_absence.period_start

),

final as (

    {{ indicator_cube('flagged', areas='school', numerator_when='has_report') }}

)

select * from final
