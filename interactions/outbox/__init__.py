"""The reply outbox (§6): workers hand it finished replies; its own senders deliver them.

    outbox.py      Outbox: the senders, per-attempt scheduling, expiry, outcomes, drain
    pending.py     PendingReply: a reply on its way, and what it keeps in the store
    schedule.py    replies by the time of their next attempt
    store.py       ReplyStore, and MemoryReplies (memory mode: nothing kept beyond the outbox)
    postgres.py    PgReplies: replies in their interaction's row (PostgreSQL mode), outbox_sql.py its SQL
"""
