DROP TABLE email_verification_codes;
DROP TABLE users;
