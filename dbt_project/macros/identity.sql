{#- Age in whole years on a date: birthdays not yet reached in that year do not count
    (someone born 29 February turns a year older on 1 March in common years). -#}
{% macro age_on(birth_date, on_date) -%}
    (year({{ on_date }}) - year({{ birth_date }})
        - case when month({{ on_date }}) * 100 + day({{ on_date }})
                    < month({{ birth_date }}) * 100 + day({{ birth_date }})
               then 1 else 0 end)
{%- endmacro %}

{#- The 12-digit candidate of a raw identifier (its century resolved; null when the text has no
    accepted format), using the identity macros installed on every connection by
    samverkan.dbt_plugin. A model computes it once, as a column, and passes that column to
    normalised_pnr and pnr_problem: a DuckDB macro's argument is substituted wherever the macro
    uses it, so computing it inside them repeated it about twenty times a row. -#}
{% macro pnr_candidate(raw) -%}
    samverkan_pnr_candidate(samverkan_pnr_clean({{ raw }}), {{ reference_date() }})
{%- endmacro %}

{#- Normalised 12-digit number of a raw identifier (null when unusable), given its candidate
    (pnr_candidate). -#}
{% macro normalised_pnr(raw, candidate) -%}
    samverkan_normalise_pnr_of({{ raw }}, {{ candidate }}, {{ reference_date() }})
{%- endmacro %}

{#- Why an identifier is unusable: 'missing', 'bad_format', 'bad_date', 'bad_checksum'
    (null when it is valid), given its candidate (pnr_candidate). -#}
{% macro pnr_problem(raw, candidate) -%}
    samverkan_pnr_problem_of({{ raw }}, {{ candidate }}, {{ reference_date() }})
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
    {%- set digits = modules.re.sub('[^0-9]', '', required_var('municipality_organisation_number')) -%}
    (regexp_replace(coalesce({{ column }}, ''), '[^0-9]', '', 'g') = {{ sql_string(digits) }})
{%- endmacro %}

{#- The rows of a relation with pnr12 and is_protected, joined to int_identities: each row
    gains the person's pseudonym and birth date; is_protected becomes "protected in any
    source" and is_linkable says the row has a pseudonym and is not protected. -#}
{% macro with_identity(relation) -%}
    select
        records.* exclude (is_protected),
        identities.person_pseudonym,
        identities.birth_date,
        coalesce(identities.is_protected, records.is_protected) as is_protected,
        identities.person_pseudonym is not null
            and not coalesce(identities.is_protected, records.is_protected) as is_linkable
    from {{ relation }} as records
    left join {{ ref('int_identities') }} as identities
        on identities.pnr12 = records.pnr12
{%- endmacro %}
