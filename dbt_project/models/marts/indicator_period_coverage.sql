{#- Per indicator and published period: is the period running, and does every source the
    indicator uses cover it and its look-back (INDICATOR_RULES.md, "Running periods and data
    coverage")? The sources come from each ind_* model's meta: source_systems (the data the
    period itself counts) and lookback (window and source_systems of the data read before the
    period). coverage is null when everything is covered, else the first code that applies:
      source_starts_after_period   a source's first data date is after the period (up to R)
      source_starts_in_period      a source's first data date is after the period's first day
      source_ends_in_period        a source's last data date lies more than source_gap_days
                                   before the period's end (R for the running period)
      lookback_before_first_data   the look-back begins before a look-back source's first
                                   data date
    The look-back begins on: trailing, the day after trailing_window_start; sst_windows,
    period_start − 2 × sst_window_weeks weeks (the before-window of the shortest SST insats
    followed up on the period's first day); sig_followup, the day after period_start −
    sig_followup_months months. -#}

{%- set rows = [] -%}
{%- set windows = {} -%}
{%- if execute -%}
    {%- for node in graph.nodes.values() -%}
        {%- set meta = node.config.meta if node.resource_type == 'model' else {} -%}
        {%- if meta.get('indicator_id') -%}
            {%- for source_system in meta.get('source_systems') or [] -%}
                {%- do rows.append((meta['indicator_id'], source_system, 'period')) -%}
            {%- endfor -%}
            {%- if meta.get('lookback') -%}
                {%- do windows.update({meta['indicator_id']: meta['lookback']['window']}) -%}
                {%- for source_system in meta['lookback']['source_systems'] -%}
                    {%- do rows.append((meta['indicator_id'], source_system, 'lookback')) -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif -%}

{%- set sst_days = 2 * 7 * var_int('sst_window_weeks', 1) -%}
{%- set sig_months = var_int('sig_followup_months', 1) -%}
{%- set gap_days = var_int('source_gap_days', 0) -%}

with

periods as (

    select period_type, period_start, period_end, lookback_end, trailing_window_start,
        is_running_period
    from {{ ref('int_periods') }}
    where is_report_period

),

data_coverage as (

    select * from {{ ref('rpt_data_coverage') }}

),

-- what each indicator reads: (indicator_id, source_system, role 'period' or 'lookback')
indicator_sources as (

    {% if rows -%}
    select * from (values
        {%- for row in rows %}
        ({{ sql_string(row[0]) }}, {{ sql_string(row[1]) }}, {{ sql_string(row[2]) }}, {{ sql_string(windows.get(row[0], '')) }}){{ ',' if not loop.last }}
        {%- endfor %}
    ) as sources (indicator_id, source_system, role, lookback_window)
    {%- else -%}
    select
        cast(null as varchar) as indicator_id,
        cast(null as varchar) as source_system,
        cast(null as varchar) as role,
        cast(null as varchar) as lookback_window
    where false
    {%- endif %}

),

checks as (

    select
        indicator_sources.indicator_id,
        periods.period_type,
        periods.period_start,
        case
            when indicator_sources.role = 'period' then
                case
                    when data_coverage.first_data_date is null
                        or data_coverage.first_data_date > periods.lookback_end
                        then 1
                    when data_coverage.first_data_date > periods.period_start then 2
                    when data_coverage.last_data_date
                        < periods.lookback_end - to_days({{ gap_days }}) then 3
                end
            when data_coverage.first_data_date is null
                or data_coverage.first_data_date > case indicator_sources.lookback_window
                    when 'trailing' then periods.trailing_window_start + 1
                    when 'sst_windows' then periods.period_start - {{ sst_days }}
                    when 'sig_followup'
                        then cast(periods.period_start - to_months({{ sig_months }}) as date) + 1
                end
                then 4
        end as code_rank
    from indicator_sources
    cross join periods
    left join data_coverage
        on data_coverage.source_system = indicator_sources.source_system

),

ranked as (

    select
        indicator_id,
        period_type,
        period_start,
        min(code_rank) as code_rank
    from checks
    group by indicator_id, period_type, period_start

),

final as (

    select
        ranked.indicator_id,
        ranked.period_type,
        ranked.period_start,
        periods.is_running_period as is_running,
        case ranked.code_rank
            when 1 then 'source_starts_after_period'
            when 2 then 'source_starts_in_period'
            when 3 then 'source_ends_in_period'
            when 4 then 'lookback_before_first_data'
        end as coverage
    from ranked
    inner join periods
        on periods.period_type = ranked.period_type
        and periods.period_start = ranked.period_start

)

select * from final
