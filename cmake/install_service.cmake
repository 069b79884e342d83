# Install-time part of the `server` component (included by cmake_install;
# PRESENCE_SOURCE_DIR and PRESENCE_BINARY_DIR are set by the caller): the
# example configuration and the systemd unit, with the paths of the prefix
# being installed to, so that `cmake --install --prefix P`, a DESTDIR and
# CPack (prefix /usr) each get a unit that names the right binary.
#
# Prefix /usr (a distribution package): /etc/presenced and
# /lib/systemd/system, as Debian 12's packages use. Any other prefix keeps
# everything below it: P/etc/presenced and P/lib/systemd/system.
# cmake_install.cmake runs with old policies, under which "@VAR@" in a
# quoted argument is expanded: not here.
cmake_policy(VERSION 3.25)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(presence_confdir /etc/presenced)
  set(presence_unitdir /lib/systemd/system)
else()
  set(presence_confdir ${CMAKE_INSTALL_PREFIX}/etc/presenced)
  set(presence_unitdir ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()
set(BINDIR ${CMAKE_INSTALL_PREFIX}/bin)
set(CONFDIR ${presence_confdir})
# One generated unit per destination: installs to different places may run
# at once (a test and cpack).
string(MD5 presence_unit_key "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
set(presence_unit_dir ${PRESENCE_BINARY_DIR}/generated/unit-${presence_unit_key})
# Plain replacement, not configure_file: the unit's own `@system-service`
# syscall sets must stay as they are.
file(READ ${PRESENCE_SOURCE_DIR}/deploy/presenced.service.in presence_unit)
string(REPLACE "@BINDIR@" "${BINDIR}" presence_unit "${presence_unit}")
string(REPLACE "@CONFDIR@" "${CONFDIR}" presence_unit "${presence_unit}")
file(WRITE ${presence_unit_dir}/presenced.service "${presence_unit}")
# file(INSTALL) adds DESTDIR and records the files in install_manifest.txt.
file(INSTALL DESTINATION ${presence_unitdir} TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES ${presence_unit_dir}/presenced.service)
file(INSTALL DESTINATION ${presence_confdir} TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES ${PRESENCE_SOURCE_DIR}/deploy/presenced.toml)
