//! Binance spot ticker prices, `GET /api/v3/ticker/price?symbols=[...]`
//! (documented answer: `[{"symbol":"BTCUSDT","price":"95000.01"}]`).
//! Crypto only; USDT stands in for USD. Public: no key. Limit: 6,000
//! request weight per minute per IP, this call weighs 4 for a few symbols,
//! so once a second is well within it.

use futures::future::BoxFuture;

use super::{
    HttpFetcher, PriceProvider, PriceRequest, ProviderError, Quote, complete, parse_price,
};

pub struct Binance {
    base_url: String,
    http: HttpFetcher,
}

const NAME: &str = "binance";

impl Binance {
    pub fn new(base_url: &str, http: HttpFetcher) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        }
    }
}

impl PriceProvider for Binance {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch<'a>(
        &'a self,
        request: PriceRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<Quote>, ProviderError>> {
        Box::pin(async move {
            let pairs: Vec<String> = request
                .symbols
                .iter()
                .map(|s| format!("\"{s}USDT\""))
                .collect();
            let list = format!("[{}]", pairs.join(","));
            let url = format!(
                "{}/api/v3/ticker/price?symbols={}",
                self.base_url,
                urlencode(&list)
            );
            let body = self.http.get_json(&url, &[]).await?;
            let items = body.as_array().ok_or_else(|| ProviderError::Malformed {
                provider: NAME,
                reason: format!("expected an array, got {}", excerpt(&body)),
            })?;
            let mut quotes = Vec::new();
            for item in items {
                let pair = item["symbol"].as_str().unwrap_or_default();
                let Some(symbol) = pair.strip_suffix("USDT") else {
                    continue;
                };
                if request.symbols.iter().any(|s| s == symbol) {
                    quotes.push(Quote {
                        symbol: symbol.to_owned(),
                        price_usd: parse_price(NAME, symbol, &item["price"])?,
                    });
                }
            }
            complete(NAME, request.symbols, quotes)
        })
    }
}

pub(super) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub(super) fn excerpt(value: &serde_json::Value) -> String {
    value.to_string().chars().take(120).collect()
}
