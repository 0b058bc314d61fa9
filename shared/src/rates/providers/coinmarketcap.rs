//! CoinMarketCap quotes, `GET /v2/cryptocurrency/quotes/latest?symbol=BTC,ETH&convert=USD`
//! with the key in `X-CMC_PRO_API_KEY` (answer:
//! `{"status":{"error_code":0},"data":{"BTC":[{"quote":{"USD":{"price":95000.1}}}]}}`;
//! v1's objects instead of arrays are accepted too). Crypto only. Basic
//! plan: 30 calls/minute and 10,000 credits per month: about one call
//! every 5 minutes sustained.

use futures::future::BoxFuture;

use super::{
    HttpFetcher, PriceProvider, PriceRequest, ProviderError, Quote, binance::excerpt, complete,
    parse_price,
};

pub struct CoinMarketCap {
    base_url: String,
    api_key: String,
    http: HttpFetcher,
}

const NAME: &str = "coinmarketcap";

impl CoinMarketCap {
    pub fn new(base_url: &str, api_key: String, http: HttpFetcher) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            http,
        }
    }
}

impl PriceProvider for CoinMarketCap {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch<'a>(
        &'a self,
        request: PriceRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<Quote>, ProviderError>> {
        Box::pin(async move {
            let url = format!(
                "{}/v2/cryptocurrency/quotes/latest?symbol={}&convert=USD",
                self.base_url,
                request.symbols.join(",")
            );
            let body = self
                .http
                .get_json(
                    &url,
                    &[
                        ("X-CMC_PRO_API_KEY", &self.api_key),
                        ("Accept", "application/json"),
                    ],
                )
                .await?;
            let code = body["status"]["error_code"].as_i64();
            if code != Some(0) {
                return Err(ProviderError::Malformed {
                    provider: NAME,
                    reason: format!("status {}", excerpt(&body["status"])),
                });
            }
            let mut quotes = Vec::new();
            for symbol in request.symbols {
                let entry = &body["data"][symbol.as_str()];
                let entry = if entry.is_array() { &entry[0] } else { entry };
                let price = &entry["quote"]["USD"]["price"];
                if !price.is_null() {
                    quotes.push(Quote {
                        symbol: symbol.clone(),
                        price_usd: parse_price(NAME, symbol, price)?,
                    });
                }
            }
            complete(NAME, request.symbols, quotes)
        })
    }
}
