//! CoinGecko simple price, `GET /api/v3/simple/price?ids=bitcoin,...&vs_currencies=usd`
//! (answer: `{"bitcoin":{"usd":95000.1}}`). Crypto only. The optional demo
//! key goes in `x-cg-demo-api-key`. Demo plan: 30 calls/minute and 10,000
//! per month, so the slowest sustainable schedule is about one call every
//! 5 minutes (e.g. `RATE_REFRESH_CRON="0 */5 * * * *"` with
//! `RATE_MAX_AGE_SECS` above it).

use futures::future::BoxFuture;

use super::{
    HttpFetcher, PriceProvider, PriceRequest, ProviderError, Quote, binance::excerpt, complete,
    parse_price,
};

pub struct CoinGecko {
    base_url: String,
    api_key: Option<String>,
    http: HttpFetcher,
}

const NAME: &str = "coingecko";

fn coin_id(symbol: &str) -> Option<&'static str> {
    match symbol {
        "BTC" => Some("bitcoin"),
        "ETH" => Some("ethereum"),
        "SOL" => Some("solana"),
        _ => None,
    }
}

impl CoinGecko {
    pub fn new(base_url: &str, api_key: Option<String>, http: HttpFetcher) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            http,
        }
    }
}

impl PriceProvider for CoinGecko {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch<'a>(
        &'a self,
        request: PriceRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<Quote>, ProviderError>> {
        Box::pin(async move {
            let mut ids = Vec::new();
            for symbol in request.symbols {
                ids.push(coin_id(symbol).ok_or_else(|| ProviderError::Config {
                    provider: NAME,
                    reason: format!("no CoinGecko id for {symbol}"),
                })?);
            }
            let url = format!(
                "{}/api/v3/simple/price?ids={}&vs_currencies=usd",
                self.base_url,
                ids.join(",")
            );
            let headers: Vec<(&str, &str)> = self
                .api_key
                .as_deref()
                .map(|key| vec![("x-cg-demo-api-key", key)])
                .unwrap_or_default();
            let body = self.http.get_json(&url, &headers).await?;
            if !body.is_object() {
                return Err(ProviderError::Malformed {
                    provider: NAME,
                    reason: format!("expected an object, got {}", excerpt(&body)),
                });
            }
            let mut quotes = Vec::new();
            for symbol in request.symbols {
                let id = coin_id(symbol).unwrap_or_default();
                let price = &body[id]["usd"];
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
