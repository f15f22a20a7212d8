with

pupil_months as (

    select * from {{ ref('fct_pupil_months') }}

),

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

high_absence as (

    select
        person_pseudonym,
        month_start,
        month_end,
        stadsdelsomrade_code
    from pupil_months
    where is_high_absence

),

-- at least one report received in the trailing 12 months (month_end - 12 months, month_end]
with_report as (

    select distinct
        high_absence.person_pseudonym,
        high_absence.month_start
    from high_absence
    inner join reports_of_concern
        on reports_of_concern.person_pseudonym = high_absence.person_pseudonym
        and reports_of_concern.inkom_datum > cast(high_absence.month_end - interval 12 month as date)
        and reports_of_concern.inkom_datum <= high_absence.month_end

),

flagged as (

    select
        high_absence.*,
        with_report.person_pseudonym is not null as has_report
    from high_absence
    left join with_report
        on with_report.person_pseudonym = high_absence.person_pseudonym
        and with_report.month_start = high_absence.month_start

),

cells as (

    {{ indicator_cells(
        'flagged',
        numerator='count(distinct person_pseudonym) filter (where has_report)',
        denominator='count(distinct person_pseudonym)'
    ) }}

),

final as (

    {{ indicator_rows('cells', 'hog_franvaro_med_orosanmalan', 'andel') }}

)

select * from final
