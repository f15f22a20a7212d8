{#- The analytics warehouse holds no direct identifiers: no column whose name says
    personnummer, civic number, name or exact birth date. Returns offending columns. -#}

select table_schema, table_name, column_name
from information_schema.columns
where table_catalog = 'analytics'
    and (
        regexp_matches(lower(column_name), 'pnr|personnummer|civic|birth_date|fornamn|efternamn|first_name|last_name|given_name|family_name|diarienummer')
    )
