DROP INDEX emails_sending_idx;
