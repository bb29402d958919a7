EAPI=8
DESCRIPTION="Say hello"
HOMEPAGE="https://example.org"
LICENSE="MIT"
SLOT="0"
KEYWORDS="~amd64"
inherit hello
