# ruff: noqa: E501 - the page is HTML data, kept as a browser would receive it
"""Realistic HTML pages for the rewriter benchmark (``rewrite_bench.py``).

:func:`shop_page` is a ~30 KB product-listing page with the tracking snippets a
typical shop carries: GA4 (gtag), Google Tag Manager (script + noscript iframe),
Meta Pixel (script + noscript image), Hotjar, a YouTube embed, preconnect hints
and 150 first-party product images. :func:`stream` yields an arbitrarily large
HTML response made of such pages' product grids, in fixed-size chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

HEAD = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoes &amp; Boots | Example Shop</title>
<link rel="preconnect" href="https://fonts.gstatic.com" crossorigin>
<link rel="preconnect" href="https://www.googletagmanager.com">
<link rel="dns-prefetch" href="//connect.facebook.net">
<link rel="stylesheet" href="/static/css/site.css?v=3f9a1c">
<link rel="icon" href="/favicon.ico">
<meta property="og:title" content="Shoes &amp; Boots">
<script type="application/ld+json">{"@context":"https://schema.org","@type":"Store","name":"Example Shop"}</script>
<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id=G-ABC123XYZ9"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());

  gtag('config', 'G-ABC123XYZ9');
</script>
<!-- Google Tag Manager -->
<script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':
new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],
j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src=
'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);
})(window,document,'script','dataLayer','GTM-K9X2PQ7');</script>
<!-- End Google Tag Manager -->
<!-- Meta Pixel Code -->
<script>
!function(f,b,e,v,n,t,s)
{if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};
if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';
n.queue=[];t=b.createElement(e);t.async=!0;
t.src=v;s=b.getElementsByTagName(e)[0];
s.parentNode.insertBefore(t,s)}(window, document,'script',
'https://connect.facebook.net/en_US/fbevents.js');
fbq('init', '1234567890123456');
fbq('track', 'PageView');
</script>
<noscript><img height="1" width="1" style="display:none"
src="https://www.facebook.com/tr?id=1234567890123456&ev=PageView&noscript=1"
/></noscript>
<!-- End Meta Pixel Code -->
<!-- Hotjar Tracking Code -->
<script>
    (function(h,o,t,j,a,r){
        h.hj=h.hj||function(){(h.hj.q=h.hj.q||[]).push(arguments)};
        h._hjSettings={hjid:3456789,hjsv:6};
        a=o.getElementsByTagName('head')[0];
        r=o.createElement('script');r.async=1;
        r.src=t+h._hjSettings.hjid+j+h._hjSettings.hjsv;
        a.appendChild(r);
    })(window,document,'https://static.hotjar.com/c/hotjar-','.js?sv=');
</script>
<script src="/static/js/site.js?v=3f9a1c" defer></script>
<style>
.grid{display:grid;grid-template-columns:repeat(4,1fr);gap:1rem}
.card img{width:100%;height:auto}
</style>
</head>
<body class="listing">
<!-- Google Tag Manager (noscript) -->
<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-K9X2PQ7"
height="0" width="0" style="display:none;visibility:hidden"></iframe></noscript>
<!-- End Google Tag Manager (noscript) -->
<header class="site-header">
<a class="logo" href="/"><img src="/static/img/logo.svg" alt="Example Shop" width="120" height="40"></a>
<nav aria-label="Main"><ul>
<li><a href="/women/">Women</a></li><li><a href="/men/">Men</a></li>
<li><a href="/kids/">Kids</a></li><li><a href="/sale/">Sale</a></li>
</ul></nav>
<form class="search" action="/search" method="get"><input type="search" name="q" placeholder="Search shoes"><button>Search</button></form>
</header>
<main>
<h1>Shoes &amp; Boots</h1>
<section class="video">
<iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ" title="Our autumn collection" frameborder="0" allow="accelerometer; autoplay; clipboard-write; encrypted-media; gyroscope; picture-in-picture; web-share" referrerpolicy="strict-origin-when-cross-origin" allowfullscreen></iframe>
</section>
<ul class="grid">
"""

CARD = """<li class="card"><a href="/p/{n}/boot-{n}"><img src="/static/p/{n}-400.webp" \
alt="Leather boot {n}" width="400" height="400" loading="lazy"></a><b>&euro;{price}.95</b></li>
"""

FOOT = b"""</ul>
</main>
<footer class="site-footer"><p>&copy; 2026 Example Shop &middot; <a href="/privacy">Privacy</a> &middot; <a href="/_cookiegate/declaration">Cookies</a></p></footer>
</body>
</html>
"""


def cards(start: int, count: int) -> bytes:
    """``count`` product cards (each with one first-party image)."""
    return "".join(
        CARD.format(n=n, price=40 + n % 60) for n in range(start, start + count)
    ).encode()


def shop_page(images: int = 150, first: int = 0) -> bytes:
    """The realistic ~30 KB page described in the module docstring; ``first``: the
    number of its first product (another ``first``: another page of the catalogue,
    the same template with other text)."""
    return HEAD + cards(first, images) + FOOT


def chunked(data: bytes, size: int = 4096) -> list[bytes]:
    """``data`` cut into ``size``-byte chunks."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def stream(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """About ``total`` bytes of HTML (head, endless product grid, foot) in chunks.

    Memory use is constant: the grid is generated one block of cards at a time.
    """
    pending = bytearray(HEAD)
    sent = 0
    n = 0
    while sent < total:
        while len(pending) < chunk:
            pending += cards(n, 50)
            n += 50
        piece = bytes(pending[:chunk])
        del pending[:chunk]
        sent += len(piece)
        yield piece
    yield bytes(pending) + FOOT
