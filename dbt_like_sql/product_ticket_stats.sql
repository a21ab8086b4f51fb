-- per-product ticket volume and shape, straight from ingestion
with source as (
    select * from raw_tickets
),

renamed as (
    select
        product,
        count(*) as tickets,
        count(distinct thread_id) as threads,
        count(distinct source_file) as source_files,
        avg(len(messages)) as avg_turns,
        min(created_at) as first_ticket_at,
        max(created_at) as last_ticket_at
    from source
    group by product
)

select * from renamed
