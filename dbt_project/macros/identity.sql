{#- Age in whole years on a date: birthdays not yet reached in that year do not count
    (someone born 29 February turns a year older on 1 March in common years). -#}
{% macro age_on(birth_date, on_date) -%}
    (year({{ on_date }}) - year({{ birth_date }})
        - case when month({{ on_date }}) * 100 + day({{ on_date }})
                    < month({{ birth_date }}) * 100 + day({{ birth_date }})
               then 1 else 0 end)
{%- endmacro %}

{#- Normalised 12-digit number of a raw identifier (null when unusable), using the
    identity macros installed on every connection by samverkan.dbt_plugin. -#}
{% macro normalised_pnr(raw) -%}
    samverkan_normalise_pnr({{ raw }}, {{ reference_date() }})
{%- endmacro %}

{#- Why an identifier is unusable: 'missing', 'bad_format', 'bad_date', 'bad_checksum'. -#}
{% macro pnr_problem(raw) -%}
    samverkan_pnr_problem({{ raw }}, {{ reference_date() }})
{%- endmacro %}

{#- Keyed pseudonym (HMAC-SHA256 under the connection's key) of any text, e.g. a police
    diarienummer that must not reach the analytics warehouse in clear. The prefix keeps
    these values apart from person pseudonyms. -#}
{% macro keyed_reference(prefix, value) -%}
    samverkan_pseudonym({{ sql_string(prefix ~ ':') }} || {{ value }})
{%- endmacro %}

{#- True when an organisation number equals var('municipality_organisation_number'),
    ignoring separators (a municipal huvudman). -#}
{% macro is_municipality_organisation_number(column) -%}
    {%- set digits = modules.re.sub('[^0-9]', '', var('municipality_organisation_number') | string) -%}
    (regexp_replace(coalesce({{ column }}, ''), '[^0-9]', '', 'g') = {{ sql_string(digits) }})
{%- endmacro %}
