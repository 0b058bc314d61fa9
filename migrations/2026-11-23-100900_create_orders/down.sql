DROP TABLE orders;
DROP TABLE clearing_batches;
