-- Disputes' settlements (docs/architecture.md, "Complaints"): the merchant's accept or the chargeback
-- refunds the payer through the refund process; the complaints projection follows that refund, and
-- event-consumers' complaints process finds the disputes past their due_at and the failed refunds to try
-- again.

-- +goose Up
alter table complaints
    add column note                text,
    add column chargeback          boolean not null default false,
    -- The refund of the settlement's latest attempt, and how it went.
    add column refund_id           uuid,
    add column refund_attempt      int,
    add column refund_amount_paise bigint,
    add column refund_status       text check (refund_status in ('PENDING', 'COMPLETED', 'AWAITING_FUNDS', 'FAILED'));
create unique index complaints_refund on complaints (refund_id) where refund_id is not null;
-- The disputes the chargeback waits for, and the settlements whose refund is to be tried again.
create index complaints_due on complaints (due_at) where status = 'RAISED' and due_at is not null;
create index complaints_refund_failed on complaints (payee_vpa) where refund_status in ('AWAITING_FUNDS', 'FAILED');

-- +goose Down
drop index complaints_refund_failed;
drop index complaints_due;
drop index complaints_refund;
alter table complaints
    drop column refund_status,
    drop column refund_amount_paise,
    drop column refund_attempt,
    drop column refund_id,
    drop column chargeback,
    drop column note;
