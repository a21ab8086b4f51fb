-- staging: one row per ingested ticket, typed and renamed for analysis
with source as (
    select * from raw_tickets
),

renamed as (
    select
        ticket_id,
        thread_id,
        product,
        source_kind,
        source_file,
        cast(created_at as varchar) as created_at,
        csat,
        len(messages) as turns,
        json_extract_string(metadata, '$.intent') as intent,
        json_extract_string(metadata, '$.category') as category
    from source
)

select * from renamed
