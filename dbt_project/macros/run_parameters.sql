{#- Run parameters. The values that change from run to run (the reference date, the data
    version, the attendance logic fingerprint) come from the connection: the pipeline does not
    pass them as vars, so a new value does not make dbt parse the project again; the plugin
    (samverkan/dbt_plugin.py, samverkan/run_parameters.py) defines each as a DuckDB macro
    samverkan_run_<name>(), a constant once DuckDB binds the query. A var of the same name (dbt
    run by hand with --vars, a unit test's overrides) wins and is rendered as a literal. Every
    model reads them through these macros. -#}

{#- A run parameter as SQL: the var's literal when one is set, else the connection's macro.
    `literal` renders the var's value (sql_string, or reference_date_literal). -#}
{% macro run_parameter(name, literal='sql_string') -%}
    {%- set value = var(name, none) -%}
    {%- if value is none -%}
        samverkan_run_{{ name }}()
    {%- elif literal == 'date' -%}
        {{ reference_date_literal(value) }}
    {%- else -%}
        {{ sql_string(value) }}
    {%- endif -%}
{%- endmacro %}

{#- A date var as a SQL date literal, checked to be an ISO date. -#}
{% macro reference_date_literal(value) -%}
    {%- set value = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error("var('reference_date') must be an ISO date (YYYY-MM-DD), got '" ~ value ~ "'") }}
    {%- endif -%}
    date '{{ value }}'
{%- endmacro %}

{#- The data date R as a SQL date: nothing dated after R counts. Default today in
    Europe/Stockholm. -#}
{% macro reference_date() -%}
    {{ run_parameter('reference_date', 'date') }}
{%- endmacro %}

{#- The publication version of the build as a SQL string (default 'dev'). -#}
{% macro data_version() -%}
    {{ run_parameter('data_version') }}
{%- endmacro %}

{#- The fingerprint of the attendance chain's logic (samverkan/incremental.py) as a SQL string
    (default ''). -#}
{% macro attendance_logic_fingerprint() -%}
    {{ run_parameter('attendance_logic_fingerprint') }}
{%- endmacro %}

{#- First day of the report window: the first day of the month of R minus
    (report_months - 1) months. A period is published when it overlaps [this day, R]. -#}
{% macro report_window_start() -%}
    cast(date_trunc('month', {{ reference_date() }}) - to_months({{ report_months() - 1 }}) as date)
{%- endmacro %}

{% macro report_months() -%}
    {{- return(var_int('report_months', 1)) -}}
{%- endmacro %}

{#- A var that must be a whole number of at least `minimum` (days, weeks, months, counts),
    returned as a number so macros can compute with it; anything else stops the run. -#}
{% macro var_int(name, minimum=0) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^[0-9]+$', value) -%}
        {{ exceptions.raise_compiler_error("var('" ~ name ~ "') must be a whole number, got '" ~ value ~ "'") }}
    {%- endif -%}
    {%- if value | int < minimum -%}
        {{ exceptions.raise_compiler_error("var('" ~ name ~ "') must be at least " ~ minimum ~ ", got " ~ value) }}
    {%- endif -%}
    {{- return(value | int) -}}
{%- endmacro %}

{#- A share threshold (0 < value <= 1) rendered as a SQL double, e.g. high_absence_threshold. -#}
{% macro var_share(name) -%}
    {%- set value = var_number(name) -%}
    {%- if not (0 < (value | float) <= 1) -%}
        {{ exceptions.raise_compiler_error("var('" ~ name ~ "') must be a share in (0, 1], got " ~ value) }}
    {%- endif -%}
    cast({{ value }} as double)
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

{#- A var the run must set (the municipality's code, name and organisation number, from
    [municipality] in samverkan.toml): empty stops the build with a message that says where it
    comes from. Parsing (execute = false) accepts the empty default. -#}
{% macro required_var(name) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if execute and not value -%}
        {{ exceptions.raise_compiler_error("var('" ~ name ~ "') is not set: every run sets it from [municipality] in samverkan.toml") }}
    {%- endif -%}
    {{- return(value) -}}
{%- endmacro %}

{#- A required var rendered as a quoted SQL string literal. -#}
{% macro required_var_string(name) -%}
    {{ sql_string(required_var(name)) }}
{%- endmacro %}
