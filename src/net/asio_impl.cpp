// The one translation unit that compiles Asio, Asio SSL and Beast (BOOST_*_SEPARATE_COMPILATION,
// house style A.3): every other TU includes their headers without the implementation.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
