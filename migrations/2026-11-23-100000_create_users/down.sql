DROP TABLE one_time_codes;
DROP TABLE users;
