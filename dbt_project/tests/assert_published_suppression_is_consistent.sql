{#- Independent re-check of primary suppression on the published table: every shown cell
    meets the thresholds, and no suppressed cell carries a value. Returns offending rows. -#}

with

published as (

    select * from {{ ref('published_indicators') }}

),

offending as (

    select *
    from published
    where
        (suppressed is not null and (numerator is not null or denominator is not null or value is not null))
        or (suppressed is null and unit = 'antal' and (numerator is null or numerator < {{ var_number('min_cell') }}))
        or (suppressed is null and unit = 'andel' and (
            denominator is null
            or denominator < {{ var_number('min_cell') }}
            or numerator between 1 and {{ var_number('min_cell') }} - 1
            or denominator - numerator between 1 and {{ var_number('min_cell') }} - 1
        ))

)

select * from offending
