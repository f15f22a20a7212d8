{#- Run parameters. Every model reads the reference date through reference_date(), so the
    default (today in Europe/Stockholm) and its validation live in one place. -#}

{% macro reference_date_iso() -%}
    {%- set today = run_started_at.astimezone(modules.pytz.timezone('Europe/Stockholm')).strftime('%Y-%m-%d') -%}
    {%- set value = var('reference_date', today) | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error("var('reference_date') must be an ISO date (YYYY-MM-DD), got '" ~ value ~ "'") }}
    {%- endif -%}
    {{- value -}}
{%- endmacro %}

{#- The data date R as a SQL date literal: nothing dated after R counts. -#}
{% macro reference_date() -%}
    date '{{ reference_date_iso() }}'
{%- endmacro %}

{#- First day of the first published month: month of R minus (report_months - 1). -#}
{% macro first_report_month() -%}
    cast(date_trunc('month', {{ reference_date() }}) - to_months({{ report_months() - 1 }}) as date)
{%- endmacro %}

{#- First month the models compute: the trailing 12-month windows of the first published
    month reach back to months whose last day lies after (period_end - 12 months); one extra
    month covers the leap-day case (window of February 2025 contains 29 February 2024). -#}
{% macro first_history_month() -%}
    cast(date_trunc('month', {{ reference_date() }}) - to_months({{ report_months() - 1 + 12 }}) as date)
{%- endmacro %}

{% macro report_months() -%}
    {%- set value = var('report_months') | int -%}
    {%- if value < 1 -%}
        {{ exceptions.raise_compiler_error("var('report_months') must be at least 1") }}
    {%- endif -%}
    {{- return(value) -}}
{%- endmacro %}

{#- A var rendered as a quoted SQL string literal. -#}
{% macro var_string(name) -%}
    {{ sql_string(var(name)) }}
{%- endmacro %}

{#- A var rendered as a SQL number (validated, so no text reaches the SQL). -#}
{% macro var_number(name) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^-?[0-9]+([.][0-9]+)?$', value) -%}
        {{ exceptions.raise_compiler_error("var('" ~ name ~ "') must be a number, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{- value -}}
{%- endmacro %}

{% macro sql_string(value) -%}
    '{{ (value | string).replace("'", "''") }}'
{%- endmacro %}
