// Diesel table definitions, kept in step with `migrations/` (the layout
// `diesel print-schema` produces). A mismatch fails the tests that touch
// the table.

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        email -> Text,
        password_hash -> Text,
        email_verified_at -> Nullable<Timestamptz>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        role -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    one_time_codes (id) {
        id -> Uuid,
        user_id -> Uuid,
        purpose -> Text,
        email -> Text,
        code_hash -> Text,
        attempts -> Int4,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Uuid,
        queue -> Text,
        job -> Text,
        version -> Int2,
        payload -> Jsonb,
        run_at -> Timestamptz,
        created_at -> Timestamptz,
        claimed_until -> Nullable<Timestamptz>,
        relay_attempts -> Int4,
        last_error -> Nullable<Text>,
        dispatched_at -> Nullable<Timestamptz>,
        unique_key -> Nullable<Text>,
        traceparent -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    emails (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        to_address -> Text,
        template -> Text,
        context -> Jsonb,
        status -> Text,
        attempts -> Int4,
        last_attempt_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        message_id -> Nullable<Text>,
        claimed_at -> Nullable<Timestamptz>,
        sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        requeued_at -> Nullable<Timestamptz>,
        claimed_by -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    currencies (code) {
        code -> Text,
        name -> Text,
        kind -> Text,
        decimals -> Int2,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    price_history (observed_at, id) {
        id -> Int8,
        symbol -> Text,
        price_usd -> Numeric,
        source -> Text,
        observed_at -> Timestamptz,
        tick -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rate_refreshes (tick) {
        tick -> Timestamptz,
        worker -> Text,
        observations -> Int4,
        errors -> Nullable<Text>,
        finished_at -> Timestamptz,
    }
}

diesel::table! {
    schedule_ticks (schedule, tick) {
        schedule -> Text,
        tick -> Timestamptz,
        claimed_by -> Text,
        claimed_at -> Timestamptz,
    }
}

diesel::table! {
    ledger_accounts (id) {
        id -> Uuid,
        kind -> Text,
        currency -> Text,
        balance -> Numeric,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    wallets (id) {
        id -> Uuid,
        user_id -> Uuid,
        currency -> Text,
        wallet_number -> Text,
        name -> Text,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    wallet_fee_schedule (wallet_id) {
        wallet_id -> Uuid,
        currency -> Text,
        next_fee_at -> Timestamptz,
        period -> Int4,
    }
}

diesel::table! {
    wallet_fees (wallet_id, period) {
        wallet_id -> Uuid,
        period -> Int4,
        due_at -> Timestamptz,
        amount -> Numeric,
        currency -> Text,
        fee_amount -> Numeric,
        fee_currency -> Text,
        rate -> Numeric,
        status -> Text,
        transaction_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        charged_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    ledger_transactions (id) {
        id -> Uuid,
        kind -> Text,
        from_wallet -> Nullable<Uuid>,
        to_wallet -> Nullable<Uuid>,
        from_amount -> Nullable<Numeric>,
        from_currency -> Nullable<Text>,
        to_amount -> Nullable<Numeric>,
        to_currency -> Nullable<Text>,
        rate -> Nullable<Numeric>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> Int8,
        transaction_id -> Uuid,
        account_id -> Uuid,
        currency -> Text,
        amount -> Numeric,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Uuid,
        key -> Text,
        request_hash -> Text,
        response_status -> Nullable<Int2>,
        response_body -> Nullable<Jsonb>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    probe_runs (id) {
        id -> Int8,
        tag -> Text,
        job_id -> Uuid,
        attempt -> Int4,
        worker -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        failed -> Bool,
    }
}

diesel::table! {
    clearing_batches (id) {
        id -> Uuid,
        currency -> Text,
        side -> Text,
        amount -> Numeric,
        usd_amount -> Numeric,
        order_count -> Int4,
        status -> Text,
        attempts -> Int4,
        last_attempt_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        exchange_reference -> Nullable<Text>,
        exchange_price -> Nullable<Numeric>,
        created_at -> Timestamptz,
        cleared_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    orders (id) {
        id -> Uuid,
        user_id -> Uuid,
        side -> Text,
        currency -> Text,
        amount -> Numeric,
        price_usd -> Numeric,
        usd_amount -> Numeric,
        usd_wallet -> Uuid,
        crypto_wallet -> Uuid,
        recipient_id -> Nullable<Uuid>,
        transaction_id -> Uuid,
        status -> Text,
        batch_id -> Nullable<Uuid>,
        exchange_reference -> Nullable<Text>,
        cleared_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    bet_exposure (symbol, direction) {
        symbol -> Text,
        direction -> Text,
        open_notional -> Numeric,
    }
}

diesel::table! {
    bets (id) {
        id -> Uuid,
        user_id -> Uuid,
        wallet_id -> Uuid,
        symbol -> Text,
        direction -> Text,
        stake -> Numeric,
        leverage -> Int4,
        duration_seconds -> Int4,
        start_price -> Numeric,
        start_observed_at -> Timestamptz,
        status -> Text,
        result -> Nullable<Text>,
        end_price -> Nullable<Numeric>,
        end_observed_at -> Nullable<Timestamptz>,
        payout -> Nullable<Numeric>,
        profit -> Nullable<Numeric>,
        stake_transaction_id -> Uuid,
        payout_transaction_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        settles_at -> Timestamptz,
        settled_at -> Nullable<Timestamptz>,
        rescheduled_at -> Nullable<Timestamptz>,
        liquidation_price -> Numeric,
        liquidated -> Bool,
    }
}

diesel::table! {
    alerts (id) {
        id -> Uuid,
        user_id -> Uuid,
        symbol -> Text,
        target_price -> Numeric,
        direction -> Text,
        status -> Text,
        created_at -> Timestamptz,
        triggered_price -> Nullable<Numeric>,
        observed_at -> Nullable<Timestamptz>,
        triggered_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(one_time_codes -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(price_history -> currencies (symbol));
diesel::joinable!(wallets -> ledger_accounts (id));
diesel::joinable!(wallets -> currencies (currency));
diesel::joinable!(wallets -> users (user_id));
diesel::joinable!(ledger_entries -> ledger_transactions (transaction_id));
diesel::joinable!(ledger_entries -> ledger_accounts (account_id));
diesel::joinable!(emails -> users (user_id));
diesel::joinable!(orders -> clearing_batches (batch_id));

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        user_id -> Uuid,
        url -> Text,
        events -> Array<Text>,
        secret -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        failing_since -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Uuid,
        user_id -> Uuid,
        #[sql_name = "type"]
        type_ -> Text,
        data -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        endpoint_id -> Uuid,
        event_id -> Uuid,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Uuid,
        delivery_id -> Uuid,
        attempted_at -> Timestamptz,
        duration_ms -> Int4,
        status_code -> Nullable<Int4>,
        error -> Nullable<Text>,
    }
}

diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> webhook_events (event_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    one_time_codes,
    refresh_tokens,
    outbox,
    emails,
    currencies,
    price_history,
    rate_refreshes,
    schedule_ticks,
    ledger_accounts,
    wallets,
    ledger_transactions,
    ledger_entries,
    idempotency_keys,
    probe_runs,
    clearing_batches,
    orders,
    bets,
    alerts,
    wallet_fees,
    wallet_fee_schedule,
    webhook_endpoints,
    webhook_events,
    webhook_deliveries,
    webhook_attempts,
);
