# Install rules for everything but the binary (daemon/CMakeLists.txt installs
# that): systemd units configured with the install prefix, the commented
# example configuration, and the man pages.
#
# Components, so that each part can be installed alone:
#   systemd  units into <prefix>/lib/systemd/{system,user}
#   doc      the example configuration into <datadir>/doc/mboxmirror
#   man      mboxmirror(1) and mboxmirror.ini(5)
include(GNUInstallDirs)

# systemd looks for units under /usr/lib and /usr/local/lib, never under
# lib64, so this is <prefix>/lib whatever CMAKE_INSTALL_LIBDIR says.  Relative
# to the prefix unless given as an absolute path.
set(MM_SYSTEMD_SYSTEM_UNIT_DIR "lib/systemd/system"
    CACHE PATH "Where system units are installed")
set(MM_SYSTEMD_USER_UNIT_DIR "lib/systemd/user"
    CACHE PATH "Where user units are installed")

set(mm_systemd_src ${PROJECT_SOURCE_DIR}/systemd)
set(mm_systemd_out ${PROJECT_BINARY_DIR}/systemd)
foreach(unit mboxmirror.service mboxmirror@.service mboxmirror-once.service
             user/mboxmirror.service)
  configure_file(${mm_systemd_src}/${unit}.in ${mm_systemd_out}/${unit} @ONLY)
endforeach()

install(FILES
          ${mm_systemd_out}/mboxmirror.service
          ${mm_systemd_out}/mboxmirror@.service
          ${mm_systemd_out}/mboxmirror-once.service
          ${mm_systemd_src}/mboxmirror-once.timer
        DESTINATION ${MM_SYSTEMD_SYSTEM_UNIT_DIR}
        COMPONENT systemd)
install(FILES ${mm_systemd_out}/user/mboxmirror.service
        DESTINATION ${MM_SYSTEMD_USER_UNIT_DIR}
        COMPONENT systemd)

install(FILES ${PROJECT_SOURCE_DIR}/config/mboxmirror.ini.example
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/mboxmirror
        COMPONENT doc
        OPTIONAL)

install(FILES ${PROJECT_SOURCE_DIR}/docs/mboxmirror.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        COMPONENT man)
install(FILES ${PROJECT_SOURCE_DIR}/docs/mboxmirror.ini.5
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man5
        COMPONENT man)
