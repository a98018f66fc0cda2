-- name: cancel_notify
-- Tell the worker running an instance that it was asked to stop.
SELECT pg_notify('gen_durable_cancel', %(id)s::text);
